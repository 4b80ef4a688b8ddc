"""invoke tasks for this repository: the same tasks the `deploypipe` command offers."""

from deploypipe.cli import ns
