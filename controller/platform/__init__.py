"""What the platform defines (models manifest, ...): knowledge read by the loops, never reading them."""
