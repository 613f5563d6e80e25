"""Training scripts that reproduce the bundled models under assets/models (run as files, not imported by diffprune)."""
