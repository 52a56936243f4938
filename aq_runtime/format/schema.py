"""Constants of the `.aqz` container shared by writer and reader: name, version, size caps."""

FORMAT_NAME = "aqz"
FORMAT_VERSION = 1
GRAPH_MEMBER = "graph.json"
ARRAY_DIR = "arrays/"
MAX_MEMBERS = 20_000
MAX_GRAPH_BYTES = 64 << 20
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30
ALLOWED_DTYPES = ("uint8", "int8", "uint16", "int16", "int32", "float64")
STORAGE_ORDER = ("uint8", "int8", "uint16", "int16", "int32")  # smallest that holds the values
WEIGHT_POOL = "weights"  # packed weight codes: stored uncompressed, memory-mappable
