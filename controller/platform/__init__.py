"""What the platform defines (the models manifest, the runner's HTTP API and its rules, project
settings): knowledge read by the loops, never reading them."""
