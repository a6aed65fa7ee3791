"""The generator: model definition, conditioning from parsed prompts, and the frozen text encoder."""
