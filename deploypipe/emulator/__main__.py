"""``python -m deploypipe.emulator``: run the local Render until stopped."""

from deploypipe.emulator.server import main

raise SystemExit(main())
