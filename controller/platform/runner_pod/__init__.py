"""The runner pod of the platform's contract, split by concern: inputs, env, volumes, containers.

Pure builders: given a session, the operator's config and what the sessions loop found in its caches
(`PodInputs`), they return the exact JSON of the pod spec's parts.
"""
