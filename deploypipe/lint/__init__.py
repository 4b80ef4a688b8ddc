"""Static checks of files a release depends on (the Render Blueprint)."""
