"""One walk of a plan, shared by the Hydra sweeper and the task API."""
