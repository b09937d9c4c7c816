"""Stage 2, where lines are shipped: batches → every sink → acknowledgements, within a byte budget.

It moves batches and opaque positions: it imports nothing from the files or the checkpoints.
"""
