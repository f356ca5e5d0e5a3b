"""Models bundled with musegan (see README.md here); listed by `musegan models`."""
