"""Knowledge of the platform the operator serves (the runner's HTTP API and its rules), kept apart
from the loops: the loops read these modules, these modules never read the loops."""
