"""What an export holds and how it is written: the dataset's splits and the export formats.

Kept apart from the writers (which import pyarrow) so the command line can offer the choices
without loading them.
"""

# all: every passing clip; bench: TalkVid-Bench; train: passing clips sharing no speaker with it.
SPLITS = ("all", "bench", "train")
FORMATS = ("talkvid-json", "parquet", "webdataset", "hf")
