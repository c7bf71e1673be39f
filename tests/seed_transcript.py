"""The code of Ivory's "Multiple Runs" page, as a script (argv[1]: the client directory)."""

import sys

import ivory_hydra as ivory

client = ivory.create_client(sys.argv[1], mlflow=False)  # Set the working directory
task = client.create_task("torch")  # Or, experiment.create_task()
print(task)

task = client.create_task("torch")
runs = task.product(fold=range(2), factor=[0.5, 0.7], verbose=0)
for run in runs:
    pass  # Do somthing, for example, run.start()

task = client.create_task("torch")
runs = task.product(fold=range(2), factor=[0.5, 0.7], lr=1e-4, verbose=0)
for run in runs:
    pass

task = client.create_task("torch")
runs = task.chain(
    fold=range(2),
    factor=[0.5, 0.7],
    lr=[1e-4, 1e-3],
    batch_size=32,
    use_best_param=False,
    verbose=0,
)
for run in runs:
    pass

task = client.create_task("torch")
runs = task.chain(fold=range(2), factor=[0.5, 0.7], lr=[1e-4, 1e-3], use_best_param=True, verbose=0)
for run in runs:
    pass  # We do nothing, so the first values are used.
