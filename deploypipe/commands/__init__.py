"""What each command-line task does, as plain functions the invoke tasks call."""
