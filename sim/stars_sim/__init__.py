"""Development tools for stars_assets (not shipped with the product): the vendor feed generator, the demo driver and the benchmark."""
