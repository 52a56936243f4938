"""Constants of the `.aqz` container shared by writer and reader: name, version, size caps."""

FORMAT_NAME = "aqz"
FORMAT_VERSION = 2  # what this writer writes
# what this reader reads: version 2 names what version 1 files gained before the number moved
# (entropy-coded weight streams, weight groups, `hi_gap`), so a version 1 file may hold them
READ_VERSIONS = (1, 2)
GRAPH_MEMBER = "graph.json"
ARRAY_DIR = "arrays/"
MAX_MEMBERS = 20_000
MAX_GRAPH_BYTES = 64 << 20
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30
ALLOWED_DTYPES = ("uint8", "int8", "uint16", "int16", "int32", "float64")
STORAGE_ORDER = ("uint8", "int8", "uint16", "int16", "int32")  # smallest that holds the values
WEIGHT_POOL = "weights"  # weight codes, packed or coded: stored uncompressed
