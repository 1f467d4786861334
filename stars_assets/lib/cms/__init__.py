"""CMS Part C & D Star Ratings: table parsers, rating engine and reproduction check. No Dagster here."""
