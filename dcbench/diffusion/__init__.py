"""The diffusion side of the classifier: forward process, errors, timestep samplers, pruning schedules."""
