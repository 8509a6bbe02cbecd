"""The original service's ``/envs`` API, whose published client works unchanged."""
