"""Pipeline specification: YAML loading, validation into immutable models, interpolation."""
