"""Graph passes: each a pure function Graph -> Graph in its own module, run in order by compiler/driver.py."""
