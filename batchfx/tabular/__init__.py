"""Tabular inputs: CSV, Parquet and JSON-lines files cut into mini-batches of rows.

    slices      what a mini-batch holds: byte ranges / row groups of input files (pure)
    lines       line boundaries, quotes and row counts in CSV/JSON-lines bytes (pure)
    parquet     row groups and row ranges of a Parquet file from its footer (pure)
    grouping    rows of each partition key value within one block of rows (pure)
    remote      a seekable file over ranged blob reads, and streamed chunks
    pieces      the pieces of one input file, read through ``remote``
    planning    the partition activity's loop: files → pieces → packed manifest pages
    fetch       the scorer side: download a mini-batch's slices (ranged) to local files
    batch       the picklable read instructions passed to the scoring child process
    reading     the child side: slices → one pandas DataFrame in input order, and each
                row's file and row number there (row sources)

Nothing here imports pandas or pyarrow at import time, so file-input jobs never pay for it.
"""
