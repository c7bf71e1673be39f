"""Hydra plugins of ivory-hydra (registration only)."""
