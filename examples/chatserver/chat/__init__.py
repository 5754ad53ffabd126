"""The chat example's app: three chat pages and the channel policy."""
