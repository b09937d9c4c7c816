"""What travels from the files to the sinks: batches of complete lines, and their JSON encodings."""
