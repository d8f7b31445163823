"""Built-in plug-ins; importing this package registers them."""
