"""Where a line is shaped: processors between the files and delivery (multiline, parse, filter, route)."""
