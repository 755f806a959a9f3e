-- symwire.lua: a Wireshark/tshark dissector for the symwire wire protocol, version 1 (SPEC.md).
--
-- Usage:  tshark -X lua_script:tools/wireshark/symwire.lua -o symwire.port:7000 -r capture.pcap
--         or copy this file to ~/.local/lib/wireshark/plugins/ (see tools/wireshark/README.md).
--
-- Transport: TCP (SPEC.md §20), on the port of the preference `symwire.port` (default 7000), also
-- offered in "Decode As..." (tcp.port), plus a heuristic that recognises the 8-byte preface on any
-- TCP port (enable/disable it as "symwire_tcp" under Analyze > Enabled Protocols).
-- Frames split across TCP segments and several frames in one segment are both handled
-- (pinfo.desegment_offset / desegment_len; keep "Allow subdissectors to reassemble TCP streams" on).
--
-- Each direction starts with the preface (§3): 89 'S' 'Y' 'M' 'W' CR LF version. A frame can never
-- start with 0x89 (a 4-byte header_length varint is always > 16383 or non-canonical, §2, §4), so a
-- PDU starting with 0x89 is a preface. Per-direction state (keyed by address/port pair) also
-- remembers the first PDU of each direction: that one is decoded as the preface whatever its bytes
-- (a bad magic byte or version is flagged), and a direction whose first PDU is a plausible frame
-- (a capture that started mid-connection) is decoded as frames with a note.
--
-- Checks: the header CRC32C (§6) is verified (table-driven CRC32C in Lua), and the XXH3-64 payload
-- trailer (flag CHECKSUM) is verified too (a Lua XXH3_64bits, seed 0, on Wireshark's UInt64).
-- Mismatches, non-canonical varints, malformed extensions/parameter lists, reserved flags, stream-id
-- rule violations and unknown types raise expert info (Analyze > Expert Information).
--
-- Fields (filter names):
--   symwire.preface                 bytes   the 8-byte preface
--   symwire.preface.magic           bytes   bytes 0..6 (89 53 59 4d 57 0d 0a)
--   symwire.preface.version         uint8   wire version (1)
--   symwire.frame_length            uint32  total frame size: header + payload + checksum (generated)
--   symwire.header_length           uint16  header_length varint (bytes after it, up to the CRC)
--   symwire.type                    uint8   0 AGENT_INIT, 1 AGENT_TASK, 2 AGENT_RESPONSE,
--                                           3 AGENT_ERROR, 4 AGENT_CANCEL, 5 AGENT_SYNC
--   symwire.flags                   uint8   flags byte; bits:
--     symwire.flags.checksum        bool    0x01 CHECKSUM (XXH3-64 trailer follows the payload)
--     symwire.flags.final           bool    0x02 FINAL (AGENT_RESPONSE only)
--     symwire.flags.reserved        uint8   0xFC reserved, must be 0
--   symwire.stream_id               uint64  varint
--   symwire.sequence                uint64  varint
--   symwire.payload_length          uint64  varint
--   symwire.varint.length           uint8   encoded size of the varint it annotates (generated)
--   symwire.ext                     (subtree per TLV)
--     symwire.ext.type              uint64  TLV type (1 DEADLINE, 2 TRACEPARENT, 4 TRACESTATE, 6 METADATA,
--                                           9 METHOD)
--     symwire.ext.length            uint64  TLV value length
--     symwire.ext.value             bytes   raw value (every TLV, known or unknown)
--     symwire.ext.deadline          uint64  DEADLINE: remaining budget in microseconds
--     symwire.ext.traceparent       bytes   TRACEPARENT (26 bytes), with
--       symwire.ext.traceparent.version / .trace_id / .parent_id / .flags
--     symwire.ext.tracestate        string  TRACESTATE
--     symwire.ext.metadata.key_length uint64, symwire.ext.metadata.key string,
--     symwire.ext.metadata.value    string  METADATA (value may be empty)
--     symwire.ext.method            string  METHOD (§5.1): the task's method name
--   symwire.crc                     uint32  stored header CRC32C (big-endian)
--   symwire.crc.computed            uint32  CRC32C computed over the header (generated)
--   symwire.crc.status              uint8   0 Bad, 1 Good, 2 Unverified
--   symwire.payload                 bytes   payload_length bytes
--   symwire.xxh3                    uint64  stored XXH3-64 trailer (when CHECKSUM is set)
--   symwire.xxh3.computed           uint64  XXH3-64 computed over the payload (generated)
--   symwire.xxh3.status             uint8   0 Bad, 1 Good, 2 Unverified
-- Control payloads (§11 parameter lists) of AGENT_INIT, AGENT_SYNC, AGENT_ERROR, AGENT_CANCEL:
--   symwire.param (subtree per parameter): symwire.param.id, symwire.param.length,
--     symwire.param.value (bytes; raw value of unknown parameters)
--   AGENT_INIT (§11.1):  symwire.init.phase (0 HELLO, 1 CHALLENGE, 2 PROOF, 3 WELCOME),
--     .min_version, .max_version, .version, .agent_id (string), .role (0 orchestrator, 1 agent,
--     2 peer), .capabilities (bits .capabilities.payload_checksums/.trace_context/.metadata/.drain/
--     .methods),
--     .max_payload_bytes, .max_header_bytes, .max_tasks, .replay_bytes, .replay_frames,
--     .ping_interval_us, .min_ping_interval_us, .auth_method (0 none, 1 token, 2 HMAC-SHA256),
--     .auth_data (bytes), .nonce (bytes), .session_id (bytes), .resume_token (bytes),
--     .last_received, .resumed (flag), .resume_window_us, .resume_proof (bytes)
--                                                                  -- all under symwire.init.
--   AGENT_SYNC (§11.2):  symwire.sync.ack, .ping, .pong, .drain, .bye (flag)
--   AGENT_ERROR (§11.2): symwire.error.code (absl::StatusCode), .message (string), .retryable
--     (flag), .detail (symwire ErrorCode, §7/§18)
--   AGENT_CANCEL (§11.2): symwire.cancel.reason (1 CANCELLED, 4 DEADLINE_EXCEEDED)
-- Flag parameters (resumed, bye, retryable) are booleans, true when present.
--
-- Info column, per frame: "AGENT_TASK stream=1 seq=1 len=18", with e.g. " HELLO agent_id=orch-1",
-- " ack=1", " code=12 detail=103" for control frames and " [BAD CRC]" on a CRC mismatch.
--
-- Written for Wireshark 4.0 (Lua 5.2, bit32); works with the `bit` library or Lua 5.3+ operators.

local symwire = Proto("symwire", "symwire agent protocol")

-------------------------------------------------------------------------------
-- Bit operations (Lua 5.2 bit32; fall back to LuaBitOp or native 5.3+ operators)
-------------------------------------------------------------------------------
local band, bxor, rshift
if bit32 then
  band, bxor, rshift = bit32.band, bit32.bxor, bit32.rshift
elseif bit then
  local function u(x) return x % 4294967296 end
  band = function(a, b) return u(bit.band(a, b)) end
  bxor = function(a, b) return u(bit.bxor(a, b)) end
  rshift = function(a, n) return u(bit.rshift(a, n)) end
else
  band = load("return function(a, b) return (a & b) & 0xFFFFFFFF end")()
  bxor = load("return function(a, b) return (a ~ b) & 0xFFFFFFFF end")()
  rshift = load("return function(a, n) return (a & 0xFFFFFFFF) >> n end")()
end

-------------------------------------------------------------------------------
-- Value tables
-------------------------------------------------------------------------------
local TYPE_NAMES = {
  [0] = "AGENT_INIT", [1] = "AGENT_TASK", [2] = "AGENT_RESPONSE",
  [3] = "AGENT_ERROR", [4] = "AGENT_CANCEL", [5] = "AGENT_SYNC",
}
local EXT_NAMES = { [1] = "DEADLINE", [2] = "TRACEPARENT", [4] = "TRACESTATE", [6] = "METADATA",
  [9] = "METHOD" }
local PHASE_NAMES = { [0] = "HELLO", [1] = "CHALLENGE", [2] = "PROOF", [3] = "WELCOME" }
local ROLE_NAMES = { [0] = "orchestrator", [1] = "agent", [2] = "peer" }
local AUTH_NAMES = { [0] = "none", [1] = "token", [2] = "HMAC-SHA256" }
local STATUS_NAMES = {  -- absl::StatusCode
  [0] = "OK", [1] = "CANCELLED", [2] = "UNKNOWN", [3] = "INVALID_ARGUMENT",
  [4] = "DEADLINE_EXCEEDED", [5] = "NOT_FOUND", [6] = "ALREADY_EXISTS",
  [7] = "PERMISSION_DENIED", [8] = "RESOURCE_EXHAUSTED", [9] = "FAILED_PRECONDITION",
  [10] = "ABORTED", [11] = "OUT_OF_RANGE", [12] = "UNIMPLEMENTED", [13] = "INTERNAL",
  [14] = "UNAVAILABLE", [15] = "DATA_LOSS", [16] = "UNAUTHENTICATED",
}
local ERROR_CODE_NAMES = {  -- SPEC.md §7 and §18
  [1] = "BAD_PREFACE", [2] = "UNSUPPORTED_VERSION", [3] = "NON_CANONICAL_VARINT",
  [4] = "VARINT_OUT_OF_RANGE", [5] = "BAD_HEADER_LENGTH", [6] = "HEADER_TOO_LARGE",
  [7] = "HEADER_CRC_MISMATCH", [8] = "UNKNOWN_MESSAGE_TYPE", [9] = "RESERVED_FLAGS",
  [10] = "BAD_STREAM_ID", [11] = "MALFORMED_HEADER", [12] = "PAYLOAD_TOO_LARGE",
  [13] = "PAYLOAD_CHECKSUM_MISMATCH", [14] = "MALFORMED_EXTENSION",
  [15] = "UNKNOWN_CRITICAL_EXTENSION", [16] = "DUPLICATE_EXTENSION",
  [17] = "TOO_MANY_EXTENSIONS", [18] = "BUFFER_TOO_SMALL", [19] = "INVALID_FRAME",
  [100] = "MALFORMED_PAYLOAD", [101] = "UNKNOWN_CRITICAL_PARAM", [102] = "MISSING_PARAM",
  [103] = "VERSION_MISMATCH", [104] = "INCOMPATIBLE_ROLES", [105] = "UNAUTHENTICATED",
  [106] = "HANDSHAKE_TIMEOUT", [107] = "UNEXPECTED_FRAME", [108] = "SEQUENCE_GAP",
  [109] = "BAD_ACK", [110] = "UNKNOWN_TASK", [111] = "TASK_STATE_VIOLATION",
  [112] = "TASK_ID_REUSED", [113] = "TASK_LIMIT_EXCEEDED", [114] = "NO_CREDIT",
  [115] = "REPLAY_BUFFER_FULL", [116] = "PEER_UNRESPONSIVE", [117] = "PING_FLOOD",
  [118] = "SESSION_EXPIRED", [119] = "RESUME_GAP", [120] = "RESUME_REJECTED",
  [121] = "CONNECTION_LOST", [122] = "PEER_DRAINING", [123] = "SESSION_CLOSED",
  [124] = "FRAME_TOO_LARGE", [125] = "WRONG_STATE", [126] = "PEER_ERROR",
  [127] = "UNIMPLEMENTED",
}
local CANCEL_REASONS = { [1] = "CANCELLED", [4] = "DEADLINE_EXCEEDED" }
local CHECK_STATUS = { [0] = "Bad", [1] = "Good", [2] = "Unverified" }
local STATUS_BAD, STATUS_GOOD, STATUS_UNVERIFIED = 0, 1, 2

-------------------------------------------------------------------------------
-- Fields
-------------------------------------------------------------------------------
local F = {}
local function fld(key, f) F[key] = f; return f end

fld("preface", ProtoField.bytes("symwire.preface", "Preface"))
fld("preface_magic", ProtoField.bytes("symwire.preface.magic", "Magic"))
fld("preface_version", ProtoField.uint8("symwire.preface.version", "Wire version"))
fld("frame_length", ProtoField.uint32("symwire.frame_length", "Frame length"))
fld("header_length", ProtoField.uint16("symwire.header_length", "Header length"))
fld("type", ProtoField.uint8("symwire.type", "Type", base.DEC, TYPE_NAMES))
fld("flags", ProtoField.uint8("symwire.flags", "Flags", base.HEX))
fld("flags_checksum", ProtoField.bool("symwire.flags.checksum", "CHECKSUM", 8, nil, 0x01))
fld("flags_final", ProtoField.bool("symwire.flags.final", "FINAL", 8, nil, 0x02))
fld("flags_reserved", ProtoField.uint8("symwire.flags.reserved", "Reserved", base.HEX, nil, 0xFC))
fld("stream_id", ProtoField.uint64("symwire.stream_id", "Stream ID"))
fld("sequence", ProtoField.uint64("symwire.sequence", "Sequence"))
fld("payload_length", ProtoField.uint64("symwire.payload_length", "Payload length"))
fld("varint_length", ProtoField.uint8("symwire.varint.length", "Varint size"))
fld("ext", ProtoField.none("symwire.ext", "Extension"))
fld("ext_type", ProtoField.uint64("symwire.ext.type", "Type"))
fld("ext_length", ProtoField.uint64("symwire.ext.length", "Length"))
fld("ext_value", ProtoField.bytes("symwire.ext.value", "Value"))
fld("ext_deadline", ProtoField.uint64("symwire.ext.deadline", "Deadline (remaining us)"))
fld("ext_traceparent", ProtoField.bytes("symwire.ext.traceparent", "Traceparent"))
fld("ext_tp_version", ProtoField.uint8("symwire.ext.traceparent.version", "Version", base.HEX))
fld("ext_tp_trace_id", ProtoField.bytes("symwire.ext.traceparent.trace_id", "Trace ID"))
fld("ext_tp_parent_id", ProtoField.bytes("symwire.ext.traceparent.parent_id", "Parent ID"))
fld("ext_tp_flags", ProtoField.uint8("symwire.ext.traceparent.flags", "Trace flags", base.HEX))
fld("ext_tracestate", ProtoField.string("symwire.ext.tracestate", "Tracestate"))
fld("ext_md_key_length", ProtoField.uint64("symwire.ext.metadata.key_length", "Key length"))
fld("ext_md_key", ProtoField.string("symwire.ext.metadata.key", "Key"))
fld("ext_md_value", ProtoField.string("symwire.ext.metadata.value", "Value"))
fld("ext_method", ProtoField.string("symwire.ext.method", "Method"))
fld("crc", ProtoField.uint32("symwire.crc", "Header CRC32C", base.HEX))
fld("crc_computed", ProtoField.uint32("symwire.crc.computed", "Computed CRC32C", base.HEX))
fld("crc_status", ProtoField.uint8("symwire.crc.status", "CRC status", base.DEC, CHECK_STATUS))
fld("payload", ProtoField.bytes("symwire.payload", "Payload"))
fld("xxh3", ProtoField.uint64("symwire.xxh3", "Payload XXH3-64", base.HEX))
fld("xxh3_computed", ProtoField.uint64("symwire.xxh3.computed", "Computed XXH3-64", base.HEX))
fld("xxh3_status", ProtoField.uint8("symwire.xxh3.status", "XXH3 status", base.DEC, CHECK_STATUS))
fld("param", ProtoField.none("symwire.param", "Parameter"))
fld("param_id", ProtoField.uint64("symwire.param.id", "Parameter id"))
fld("param_length", ProtoField.uint64("symwire.param.length", "Parameter length"))
fld("param_value", ProtoField.bytes("symwire.param.value", "Value"))

-- Parameter definitions per message type: id -> {name, kind, field}
-- kind: "varint" (uint64), "enum" (uint32 with names), "bytes", "string", "flag"
local PARAMS = { [0] = {}, [3] = {}, [4] = {}, [5] = {} }
local function param(msgtype, prefix, id, name, kind, desc, names)
  local abbr = "symwire." .. prefix .. "." .. name
  local f
  if kind == "varint" then f = ProtoField.uint64(abbr, desc)
  elseif kind == "enum" then f = ProtoField.uint32(abbr, desc, base.DEC, names)
  elseif kind == "bytes" then f = ProtoField.bytes(abbr, desc)
  elseif kind == "string" then f = ProtoField.string(abbr, desc)
  elseif kind == "flag" then f = ProtoField.bool(abbr, desc)
  elseif kind == "caps" then f = ProtoField.uint32(abbr, desc, base.HEX)
  end
  F[abbr] = f
  PARAMS[msgtype][id] = { name = name, kind = kind, field = f }
end
param(0, "init", 1, "phase", "enum", "Phase", PHASE_NAMES)
param(0, "init", 2, "min_version", "varint", "Min version")
param(0, "init", 3, "max_version", "varint", "Max version")
param(0, "init", 4, "version", "varint", "Version")
param(0, "init", 5, "agent_id", "string", "Agent ID")
param(0, "init", 6, "role", "enum", "Role", ROLE_NAMES)
param(0, "init", 7, "capabilities", "caps", "Capabilities")
param(0, "init", 8, "max_payload_bytes", "varint", "Max payload bytes")
param(0, "init", 9, "max_header_bytes", "varint", "Max header bytes")
param(0, "init", 10, "max_tasks", "varint", "Max tasks")
param(0, "init", 11, "replay_bytes", "varint", "Replay bytes")
param(0, "init", 12, "replay_frames", "varint", "Replay frames")
param(0, "init", 13, "ping_interval_us", "varint", "Ping interval (us)")
param(0, "init", 14, "min_ping_interval_us", "varint", "Min ping interval (us)")
param(0, "init", 15, "auth_method", "enum", "Auth method", AUTH_NAMES)
param(0, "init", 16, "auth_data", "bytes", "Auth data")
param(0, "init", 17, "nonce", "bytes", "Nonce")
param(0, "init", 18, "session_id", "bytes", "Session ID")
param(0, "init", 19, "resume_token", "bytes", "Resume token")
param(0, "init", 20, "last_received", "varint", "Last received")
param(0, "init", 21, "resumed", "flag", "Resumed")
param(0, "init", 22, "resume_window_us", "varint", "Resume window (us)")
param(0, "init", 23, "resume_proof", "bytes", "Resume proof (HMAC-SHA256, §16.2)")
param(5, "sync", 1, "ack", "varint", "Ack")
param(5, "sync", 2, "ping", "varint", "Ping")
param(5, "sync", 3, "pong", "varint", "Pong")
param(5, "sync", 4, "drain", "varint", "Drain (highest peer task id accepted)")
param(5, "sync", 5, "bye", "flag", "Bye")
param(3, "error", 1, "code", "enum", "Code", STATUS_NAMES)
param(3, "error", 2, "message", "string", "Message")
param(3, "error", 3, "retryable", "flag", "Retryable")
param(3, "error", 4, "detail", "enum", "Detail", ERROR_CODE_NAMES)
param(4, "cancel", 1, "reason", "enum", "Reason", CANCEL_REASONS)

local CAP_BITS = {
  { "payload_checksums", "PAYLOAD_CHECKSUMS", 0x1 }, { "trace_context", "TRACE_CONTEXT", 0x2 },
  { "metadata", "METADATA", 0x4 }, { "drain", "DRAIN", 0x8 },
  { "methods", "METHODS", 0x10 },
}
for _, c in ipairs(CAP_BITS) do
  F["cap_" .. c[1]] = ProtoField.bool("symwire.init.capabilities." .. c[1], c[2], 32, nil, c[3])
end

local field_list = {}
for _, f in pairs(F) do field_list[#field_list + 1] = f end
symwire.fields = field_list

-------------------------------------------------------------------------------
-- Expert info
-------------------------------------------------------------------------------
local E = {
  crc_bad = ProtoExpert.new("symwire.crc.bad", "Header CRC32C mismatch (HEADER_CRC_MISMATCH)",
                            expert.group.CHECKSUM, expert.severity.ERROR),
  xxh3_bad = ProtoExpert.new("symwire.xxh3.bad", "Payload XXH3-64 mismatch (PAYLOAD_CHECKSUM_MISMATCH)",
                             expert.group.CHECKSUM, expert.severity.ERROR),
  bad_preface = ProtoExpert.new("symwire.preface.bad", "Bad preface",
                                expert.group.PROTOCOL, expert.severity.ERROR),
  no_preface = ProtoExpert.new("symwire.preface.missing",
                               "Frame before this direction's preface (capture started mid-connection?)",
                               expert.group.SEQUENCE, expert.severity.NOTE),
  extra_preface = ProtoExpert.new("symwire.preface.repeated", "Second preface in this direction",
                                  expert.group.PROTOCOL, expert.severity.WARN),
  noncanonical = ProtoExpert.new("symwire.varint.noncanonical", "Non-canonical varint (NON_CANONICAL_VARINT)",
                                 expert.group.MALFORMED, expert.severity.ERROR),
  malformed = ProtoExpert.new("symwire.malformed", "Malformed frame",
                              expert.group.MALFORMED, expert.severity.ERROR),
  bad_type = ProtoExpert.new("symwire.type.unknown", "Unknown message type (UNKNOWN_MESSAGE_TYPE)",
                             expert.group.PROTOCOL, expert.severity.ERROR),
  bad_flags = ProtoExpert.new("symwire.flags.bad", "Reserved flags (RESERVED_FLAGS)",
                              expert.group.PROTOCOL, expert.severity.ERROR),
  bad_stream = ProtoExpert.new("symwire.stream_id.bad", "Stream id rule broken (BAD_STREAM_ID)",
                               expert.group.PROTOCOL, expert.severity.ERROR),
  ext_bad = ProtoExpert.new("symwire.ext.malformed", "Malformed extension (MALFORMED_EXTENSION)",
                            expert.group.MALFORMED, expert.severity.ERROR),
  ext_unknown = ProtoExpert.new("symwire.ext.unknown", "Unknown even extension (skipped by receivers)",
                                expert.group.UNDECODED, expert.severity.NOTE),
  ext_critical = ProtoExpert.new("symwire.ext.critical", "Unknown odd (critical) extension (UNKNOWN_CRITICAL_EXTENSION)",
                                 expert.group.PROTOCOL, expert.severity.ERROR),
  ext_dup = ProtoExpert.new("symwire.ext.duplicate", "Duplicate extension (DUPLICATE_EXTENSION)",
                            expert.group.PROTOCOL, expert.severity.ERROR),
  param_bad = ProtoExpert.new("symwire.param.malformed", "Malformed parameter list (MALFORMED_PAYLOAD)",
                              expert.group.MALFORMED, expert.severity.WARN),
  param_unknown = ProtoExpert.new("symwire.param.unknown", "Undefined parameter",
                                  expert.group.UNDECODED, expert.severity.NOTE),
  undecodable = ProtoExpert.new("symwire.undecodable", "Stream cannot be decoded further (framing lost)",
                                expert.group.MALFORMED, expert.severity.ERROR),
}
symwire.experts = { E.crc_bad, E.xxh3_bad, E.bad_preface, E.no_preface, E.extra_preface,
  E.noncanonical, E.malformed, E.bad_type, E.bad_flags, E.bad_stream, E.ext_bad, E.ext_unknown,
  E.ext_critical, E.ext_dup, E.param_bad, E.param_unknown, E.undecodable }

-------------------------------------------------------------------------------
-- Preferences
-------------------------------------------------------------------------------
local DEFAULT_PORT = 7000
symwire.prefs.port = Pref.uint("TCP port", DEFAULT_PORT, "TCP port decoded as symwire (also see Decode As)")
symwire.prefs.verify_crc = Pref.bool("Verify header CRC32C", true, "Compute the CRC32C of every header")
symwire.prefs.verify_xxh3 = Pref.bool("Verify payload XXH3-64", true,
                                      "Compute the XXH3-64 of payloads with the CHECKSUM flag")

-------------------------------------------------------------------------------
-- CRC32C (Castagnoli, reflected 0x82F63B78), table-driven
-------------------------------------------------------------------------------
local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then c = bxor(rshift(c, 1), 0x82F63B78) else c = rshift(c, 1) end
  end
  CRC_TABLE[i] = c
end

local function crc32c(s)  -- s: Lua string
  local crc = 0xFFFFFFFF
  for i = 1, #s do
    crc = bxor(rshift(crc, 8), CRC_TABLE[band(bxor(crc, s:byte(i)), 0xFF)])
  end
  return bxor(crc, 0xFFFFFFFF)
end

-------------------------------------------------------------------------------
-- XXH3-64 (xxHash 0.8 XXH3_64bits, seed 0) on Wireshark's UInt64 (arithmetic modulo 2^64)
-------------------------------------------------------------------------------
local XXH = {}
do
  local U = UInt64
  local function h(hi, lo) return U(lo, hi) end
  local P32_1, P32_2, P32_3 = U(0x9E3779B1, 0), U(0x85EBCA77, 0), U(0xC2B2AE3D, 0)
  local P64_1 = h(0x9E3779B1, 0x85EBCA87)
  local P64_2 = h(0xC2B2AE3D, 0x27D4EB4F)
  local P64_3 = h(0x165667B1, 0x9E3779F9)
  local P64_4 = h(0x85EBCA77, 0xC2B2AE63)
  local P64_5 = h(0x27D4EB2F, 0x165667C5)
  local MASK32 = U(0xFFFFFFFF, 0)
  local SECRET = table.concat({
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f",
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c",
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8",
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364",
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e",
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e" })
  SECRET = SECRET:gsub("..", function(x) return string.char(tonumber(x, 16)) end)
  local SECRET_SIZE = 192

  local function le32(s, p)  -- p: 0-based offset; returns a Lua number
    local a, b, c, d = s:byte(p + 1, p + 4)
    return a + b * 256 + c * 65536 + d * 16777216
  end
  local function le64(s, p) return U(le32(s, p), le32(s, p + 4)) end
  local function mul128_fold64(a, b)
    local alo, ahi = a:band(MASK32), a:rshift(32)
    local blo, bhi = b:band(MASK32), b:rshift(32)
    local lolo, hilo, lohi, hihi = alo * blo, ahi * blo, alo * bhi, ahi * bhi
    local cross = lolo:rshift(32) + hilo:band(MASK32) + lohi
    local upper = hilo:rshift(32) + cross:rshift(32) + hihi
    local lower = cross:lshift(32):bor(lolo:band(MASK32))
    return lower:bxor(upper)
  end
  local function xorshift(v, n) return v:bxor(v:rshift(n)) end
  local function avalanche(v)
    v = xorshift(v, 37)
    v = v * h(0x16566791, 0x9E3779F9)
    return xorshift(v, 32)
  end
  local function xxh64_avalanche(v)
    v = xorshift(v, 33); v = v * P64_2
    v = xorshift(v, 29); v = v * P64_3
    return xorshift(v, 32)
  end
  local function rotl(v, n) return v:lshift(n):bor(v:rshift(64 - n)) end
  local function rrmxmx(v, len)
    local C = h(0x9FB21C65, 0x1E98DF25)
    v = v:bxor(rotl(v, 49)):bxor(rotl(v, 24))
    v = v * C
    v = v:bxor(v:rshift(35) + len)
    v = v * C
    return xorshift(v, 28)
  end
  local function swap64(v)
    local r, x = U(0, 0), v
    for _ = 1, 8 do r = r:lshift(8):bor(x:band(U(0xFF, 0))); x = x:rshift(8) end
    return r
  end
  local function mix16(s, p, sp)
    return mul128_fold64(le64(s, p):bxor(le64(SECRET, sp)), le64(s, p + 8):bxor(le64(SECRET, sp + 8)))
  end

  local function accumulate_512(acc, s, p, sp)
    for i = 0, 7 do
      local data_val = le64(s, p + 8 * i)
      local data_key = data_val:bxor(le64(SECRET, sp + 8 * i))
      local j = (i % 2 == 0) and i + 1 or i - 1
      acc[j] = acc[j] + data_val
      acc[i] = acc[i] + data_key:band(MASK32) * data_key:rshift(32)
    end
  end
  local function scramble(acc, sp)
    for i = 0, 7 do
      local a = xorshift(acc[i], 47):bxor(le64(SECRET, sp + 8 * i))
      acc[i] = a * P32_1
    end
  end
  local function hash_long(s, len)
    local acc = { [0] = P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1 }
    local stripes_per_block = (SECRET_SIZE - 64) / 8
    local block_len = 64 * stripes_per_block
    local nb_blocks = math.floor((len - 1) / block_len)
    for n = 0, nb_blocks - 1 do
      for st = 0, stripes_per_block - 1 do
        accumulate_512(acc, s, n * block_len + st * 64, st * 8)
      end
      scramble(acc, SECRET_SIZE - 64)
    end
    local nb_stripes = math.floor(((len - 1) - block_len * nb_blocks) / 64)
    for st = 0, nb_stripes - 1 do
      accumulate_512(acc, s, nb_blocks * block_len + st * 64, st * 8)
    end
    accumulate_512(acc, s, len - 64, SECRET_SIZE - 64 - 7)
    local result = U(len, 0) * P64_1
    for i = 0, 3 do
      result = result + mul128_fold64(acc[2 * i]:bxor(le64(SECRET, 11 + 16 * i)),
                                      acc[2 * i + 1]:bxor(le64(SECRET, 11 + 16 * i + 8)))
    end
    return avalanche(result)
  end

  function XXH.xxh3_64(s)
    local len = #s
    if len == 0 then
      return xxh64_avalanche(le64(SECRET, 56):bxor(le64(SECRET, 64)))
    elseif len <= 3 then
      local c1, c2, c3 = s:byte(1), s:byte(math.floor(len / 2) + 1), s:byte(len)
      local combined = c1 * 65536 + c2 * 16777216 + c3 + len * 256
      local bitflip = U(bxor(le32(SECRET, 0), le32(SECRET, 4)), 0)
      return xxh64_avalanche(U(combined, 0):bxor(bitflip))
    elseif len <= 8 then
      local in1, in2 = le32(s, 0), le32(s, len - 4)
      local bitflip = le64(SECRET, 8):bxor(le64(SECRET, 16))
      return rrmxmx(U(in2, in1):bxor(bitflip), len)
    elseif len <= 16 then
      local lo = le64(s, 0):bxor(le64(SECRET, 24):bxor(le64(SECRET, 32)))
      local hi = le64(s, len - 8):bxor(le64(SECRET, 40):bxor(le64(SECRET, 48)))
      return avalanche(U(len, 0) + swap64(lo) + hi + mul128_fold64(lo, hi))
    elseif len <= 128 then
      local acc = U(len, 0) * P64_1
      if len > 32 then
        if len > 64 then
          if len > 96 then
            acc = acc + mix16(s, 48, 96) + mix16(s, len - 64, 112)
          end
          acc = acc + mix16(s, 32, 64) + mix16(s, len - 48, 80)
        end
        acc = acc + mix16(s, 16, 32) + mix16(s, len - 32, 48)
      end
      acc = acc + mix16(s, 0, 0) + mix16(s, len - 16, 16)
      return avalanche(acc)
    elseif len <= 240 then
      local acc = U(len, 0) * P64_1
      for i = 0, 7 do acc = acc + mix16(s, 16 * i, 16 * i) end
      acc = avalanche(acc)
      for i = 8, math.floor(len / 16) - 1 do acc = acc + mix16(s, 16 * i, 16 * (i - 8) + 3) end
      acc = acc + mix16(s, len - 16, 136 - 17)
      return avalanche(acc)
    end
    return hash_long(s, len)
  end
end

-------------------------------------------------------------------------------
-- Varints (SPEC.md §2)
-------------------------------------------------------------------------------
local MIN_FOR_LEN = { [1] = 0, [2] = 64, [4] = 16384 }
local VARINT_LEN = { [0] = 1, [1] = 2, [2] = 4, [3] = 8 }

-- Reads a varint at tvb offset off, not past limit (exclusive). Returns value (UInt64), length,
-- canonical (bool), or nil, length-needed when it does not fit.
local function read_varint(tvb, off, limit)
  if off >= limit then return nil, 1 end
  local first = tvb(off, 1):uint()
  local len = VARINT_LEN[rshift(first, 6)]
  if off + len > limit then return nil, len end
  local value, canonical
  if len == 8 then
    value = tvb(off, 8):uint64():band(UInt64(0xFFFFFFFF, 0x3FFFFFFF))
    canonical = value >= UInt64(0x40000000, 0)
  else
    local v = band(first, 0x3F)
    for i = 1, len - 1 do v = v * 256 + tvb(off + i, 1):uint() end
    value = UInt64(v, 0)
    canonical = len == 1 or v >= MIN_FOR_LEN[len]
  end
  return value, len, canonical
end

local function u64_to_number(v)  -- exact below 2^53
  return v:higher() * 4294967296 + v:lower()
end

-- Adds a varint field; flags a non-canonical encoding. Returns item.
local function add_varint(tree, field, tvb, off, len, value, canonical)
  local item = tree:add(field, tvb(off, len), value)
  if len > 1 then item:append_text(string.format(" (%d-byte varint)", len)) end
  if not canonical then item:add_proto_expert_info(E.noncanonical) end
  return item
end

-------------------------------------------------------------------------------
-- Per-direction state
-------------------------------------------------------------------------------
local first_pdu = {}  -- direction key -> frame number of the direction's first PDU
local preface_at = {} -- direction key -> frame number of its first preface
local broken_at = {}  -- direction key -> frame number where framing was lost

function symwire.init()
  first_pdu, preface_at, broken_at = {}, {}, {}
end

local function direction_key(pinfo)
  return tostring(pinfo.src) .. ":" .. tostring(pinfo.src_port) .. ">" ..
         tostring(pinfo.dst) .. ":" .. tostring(pinfo.dst_port)
end

-------------------------------------------------------------------------------
-- Extensions (§5)
-------------------------------------------------------------------------------
local function dissect_extensions(tvb, pinfo, tree, off, limit)
  local seen = {}
  local count = 0
  while off < limit do
    local start = off
    local etype, tlen, tcan = read_varint(tvb, off, limit)
    if not etype then
      tree:add_proto_expert_info(E.ext_bad, "Extension type varint runs past the CRC")
      return
    end
    local elen, llen, lcan = read_varint(tvb, off + tlen, limit)
    if not elen then
      tree:add_proto_expert_info(E.ext_bad, "Extension length varint runs past the CRC")
      return
    end
    local vstart = off + tlen + llen
    local vlen = u64_to_number(elen)
    local t = u64_to_number(etype)
    local name = EXT_NAMES[t] or ((t % 2 == 0) and "unknown even" or "unknown odd (critical)")
    if vstart + vlen > limit then
      local sub = tree:add(F.ext, tvb(start, limit - start))
      sub:set_text(string.format("Extension: %s (%d), length %d: runs past the CRC", name, t, vlen))
      add_varint(sub, F.ext_type, tvb, off, tlen, etype, tcan)
      add_varint(sub, F.ext_length, tvb, off + tlen, llen, elen, lcan)
      sub:add_proto_expert_info(E.ext_bad, "Extension value runs past the CRC")
      return
    end
    count = count + 1
    local sub = tree:add(F.ext, tvb(start, vstart + vlen - start))
    sub:set_text(string.format("Extension: %s (%d), length %d", name, t, vlen))
    add_varint(sub, F.ext_type, tvb, off, tlen, etype, tcan)
    add_varint(sub, F.ext_length, tvb, off + tlen, llen, elen, lcan)
    local vrange = tvb(vstart, vlen)
    sub:add(F.ext_value, vrange)
    if t == 0 then sub:add_proto_expert_info(E.ext_bad, "Extension type 0") end
    if (t == 1 or t == 2 or t == 4 or t == 9) then
      if seen[t] then sub:add_proto_expert_info(E.ext_dup) end
      seen[t] = true
    end
    if t == 1 then
      local v, l, c = read_varint(tvb, vstart, vstart + vlen)
      if v and l == vlen then
        add_varint(sub, F.ext_deadline, tvb, vstart, l, v, c)
        sub:append_text(string.format(": %s us", tostring(v)))
      else
        sub:add_proto_expert_info(E.ext_bad, "DEADLINE is not one varint filling the value")
      end
    elseif t == 2 then
      if vlen == 26 then
        local tp = sub:add(F.ext_traceparent, vrange)
        tp:add(F.ext_tp_version, tvb(vstart, 1))
        tp:add(F.ext_tp_trace_id, tvb(vstart + 1, 16))
        tp:add(F.ext_tp_parent_id, tvb(vstart + 17, 8))
        tp:add(F.ext_tp_flags, tvb(vstart + 25, 1))
        if tvb(vstart, 1):uint() == 0xFF then
          tp:add_proto_expert_info(E.ext_bad, "TRACEPARENT version 0xFF is invalid")
        end
      else
        sub:add_proto_expert_info(E.ext_bad, "TRACEPARENT must be 26 bytes")
      end
    elseif t == 4 then
      if vlen >= 1 then
        sub:add(F.ext_tracestate, vrange)
        sub:append_text(": " .. vrange:string())
      end
      if vlen < 1 or vlen > 512 then
        sub:add_proto_expert_info(E.ext_bad, "TRACESTATE must be 1..512 bytes")
      end
    elseif t == 6 then
      local kl, kll, kc = read_varint(tvb, vstart, vstart + vlen)
      local kn = kl and u64_to_number(kl)
      if kl and kn >= 1 and vstart + kll + kn <= vstart + vlen then
        add_varint(sub, F.ext_md_key_length, tvb, vstart, kll, kl, kc)
        local kr = tvb(vstart + kll, kn)
        sub:add(F.ext_md_key, kr)
        local rest = vlen - kll - kn
        local vtext = ""
        if rest > 0 then
          local vr = tvb(vstart + kll + kn, rest)
          sub:add(F.ext_md_value, vr)
          vtext = vr:string()
        else
          sub:add(F.ext_md_value, tvb(vstart + kll + kn, 0), "")
        end
        sub:append_text(": " .. kr:string() .. "=" .. vtext)
      else
        sub:add_proto_expert_info(E.ext_bad, "METADATA key does not fit")
      end
    elseif t == 9 then
      -- §5.1: 1..255 bytes, each 0x21..0x7E.
      local ok = vlen >= 1 and vlen <= 255
      for i = 0, vlen - 1 do
        local b = tvb(vstart + i, 1):uint()
        if b < 0x21 or b > 0x7E then ok = false end
      end
      if vlen >= 1 then
        sub:add(F.ext_method, vrange)
        sub:append_text(": " .. vrange:string())
      end
      if not ok then
        sub:add_proto_expert_info(E.ext_bad, "METHOD must be 1..255 bytes of 0x21..0x7E")
      end
    elseif t % 2 == 1 then
      sub:add_proto_expert_info(E.ext_critical)
    else
      sub:add_proto_expert_info(E.ext_unknown)
    end
    off = vstart + vlen
  end
  return count
end

-------------------------------------------------------------------------------
-- Control payloads: parameter lists (§11)
-------------------------------------------------------------------------------
local function dissect_params(tvb, pinfo, tree, off, len, msgtype)
  local defs = PARAMS[msgtype]
  local limit = off + len
  local summary = {}
  local seen = {}
  local first = true
  while off < limit do
    local pstart = off
    local pid, il, ic = read_varint(tvb, off, limit)
    if not pid then
      tree:add_proto_expert_info(E.param_bad, "param_id runs past the payload")
      break
    end
    local plen, ll, lc = read_varint(tvb, off + il, limit)
    if not plen then
      tree:add_proto_expert_info(E.param_bad, "param_length runs past the payload")
      break
    end
    local vstart = off + il + ll
    local vlen = u64_to_number(plen)
    local id = u64_to_number(pid)
    if vstart + vlen > limit then
      local sub = tree:add(F.param, tvb(pstart, limit - pstart))
      sub:set_text(string.format("Parameter %d, length %d: runs past the payload", id, vlen))
      sub:add_proto_expert_info(E.param_bad, "parameter value runs past the payload")
      break
    end
    local def = defs[id]
    local sub = tree:add(F.param, tvb(pstart, vstart + vlen - pstart))
    sub:set_text(string.format("Parameter %d %s, length %d", id, def and def.name or "(undefined)", vlen))
    add_varint(sub, F.param_id, tvb, off, il, pid, ic)
    add_varint(sub, F.param_length, tvb, off + il, ll, plen, lc)
    if not ic or not lc then sub:add_proto_expert_info(E.param_bad, "non-canonical varint") end
    if msgtype == 0 and first and id ~= 1 then
      sub:add_proto_expert_info(E.param_bad, "AGENT_INIT's first parameter must be phase (MISSING_PARAM)")
    end
    first = false
    if def and seen[id] then sub:add_proto_expert_info(E.param_bad, "parameter repeated") end
    seen[id] = true
    local vrange = vlen > 0 and tvb(vstart, vlen) or nil
    if not def then
      if vrange then sub:add(F.param_value, vrange) end
      if id % 2 == 1 then
        sub:add_proto_expert_info(E.param_unknown, "Undefined odd parameter (UNKNOWN_CRITICAL_PARAM)")
      else
        sub:add_proto_expert_info(E.param_unknown, "Undefined even parameter (skipped)")
      end
    elseif def.kind == "flag" then
      sub:add(def.field, tvb(pstart, vstart - pstart), true)
      summary[#summary + 1] = def.name
      if vlen ~= 0 then sub:add_proto_expert_info(E.param_bad, "flag parameter with a value") end
    elseif def.kind == "bytes" or def.kind == "string" then
      if vrange then
        sub:add(def.field, vrange)
        if def.kind == "string" then
          sub:append_text(": \"" .. vrange:string() .. "\"")
          if def.name == "agent_id" then summary[#summary + 1] = "agent_id=" .. vrange:string() end
        else
          sub:append_text(": " .. vrange:bytes():tohex(true))
        end
      else
        sub:add(def.field, tvb(vstart, 0), "")
      end
    else  -- varint, enum, caps
      local v, l, c = read_varint(tvb, vstart, vstart + vlen)
      if not v or l ~= vlen then
        sub:add_proto_expert_info(E.param_bad, "value is not one varint filling the parameter")
        if vrange then sub:add(F.param_value, vrange) end
      else
        local item
        if def.kind == "varint" then
          item = sub:add(def.field, vrange, v)
        elseif v > UInt64(0xFFFFFFFF, 0) then
          item = sub:add(F.param_value, vrange)
          item:add_proto_expert_info(E.param_bad, "value out of range")
        else
          item = sub:add(def.field, vrange, u64_to_number(v))
        end
        if not c then item:add_proto_expert_info(E.noncanonical) end
        local n = u64_to_number(v)
        local label = tostring(v)
        if def.kind == "enum" then
          local names = ({ phase = PHASE_NAMES, role = ROLE_NAMES, auth_method = AUTH_NAMES,
                           code = STATUS_NAMES, detail = ERROR_CODE_NAMES, reason = CANCEL_REASONS })[def.name]
          if names and names[n] then label = label .. " (" .. names[n] .. ")" end
        end
        sub:append_text(": " .. label)
        if def.kind == "caps" then
          for _, cb in ipairs(CAP_BITS) do item:add(F["cap_" .. cb[1]], vrange, n % 4294967296) end
        end
        if def.name == "phase" then
          summary[#summary + 1] = PHASE_NAMES[n] or ("phase=" .. label)
        elseif msgtype ~= 0 then
          summary[#summary + 1] = def.name .. "=" .. tostring(v)
        end
      end
    end
    off = vstart + vlen
  end
  return table.concat(summary, " ")
end

-------------------------------------------------------------------------------
-- Frames (§4)
-------------------------------------------------------------------------------

-- Returns the total size of the frame at off, or nil, bytes_needed_from_off (or -1 for "one more
-- segment"), or false, reason for a stream that cannot be framed.
local function frame_size(tvb, off)
  local avail = tvb:len() - off
  if avail < 1 then return nil, 1 end
  local first = tvb(off, 1):uint()
  local vlen = VARINT_LEN[rshift(first, 6)]
  if vlen > 2 then return false, "header_length varint longer than 2 bytes" end
  if avail < vlen then return nil, vlen end
  local hl, _, _ = read_varint(tvb, off, off + vlen)
  hl = u64_to_number(hl)
  if hl < 9 then return false, "header_length below 9 (BAD_HEADER_LENGTH)" end
  local hsize = vlen + hl
  if avail < hsize then return nil, hsize end
  local hend = off + hsize - 4
  local p = off + vlen
  local flags = tvb(p + 1, 1):uint()
  p = p + 2
  for _ = 1, 2 do
    local v, l = read_varint(tvb, p, hend)
    if not v then return false, "fixed field runs past the CRC (MALFORMED_HEADER)" end
    p = p + l
  end
  local plen = read_varint(tvb, p, hend)
  if not plen then return false, "payload_length runs past the CRC (MALFORMED_HEADER)" end
  if plen > UInt64(0x3FFFFFFF, 0) then return false, "payload_length above 1 GiB" end
  local total = hsize + u64_to_number(plen) + ((band(flags, 1) ~= 0) and 8 or 0)
  return total
end

local function dissect_frame(tvb, pinfo, tree, off, total, dir)
  local root = tree:add(symwire, tvb(off, total))
  local vlen = VARINT_LEN[rshift(tvb(off, 1):uint(), 6)]
  local hl, _, hcan = read_varint(tvb, off, off + vlen)
  local hsize = vlen + u64_to_number(hl)
  local hend = off + hsize - 4   -- offset of the CRC
  local htree = root:add(tvb(off, hsize), string.format("Header (%d bytes)", hsize))
  local fl = root:add(F.frame_length, tvb(off, total), total)
  fl:set_generated()
  add_varint(htree, F.header_length, tvb, off, vlen, u64_to_number(hl), hcan)

  local p = off + vlen
  local mtype = tvb(p, 1):uint()
  local titem = htree:add(F.type, tvb(p, 1))
  if not TYPE_NAMES[mtype] then titem:add_proto_expert_info(E.bad_type) end
  local flags = tvb(p + 1, 1):uint()
  local fitem = htree:add(F.flags, tvb(p + 1, 1))
  fitem:add(F.flags_checksum, tvb(p + 1, 1))
  fitem:add(F.flags_final, tvb(p + 1, 1))
  fitem:add(F.flags_reserved, tvb(p + 1, 1))
  local fnames = {}
  if band(flags, 1) ~= 0 then fnames[#fnames + 1] = "CHECKSUM" end
  if band(flags, 2) ~= 0 then fnames[#fnames + 1] = "FINAL" end
  if band(flags, 0xFC) ~= 0 then fnames[#fnames + 1] = "reserved" end
  if #fnames > 0 then fitem:append_text(" (" .. table.concat(fnames, ", ") .. ")") end
  if band(flags, 0xFC) ~= 0 or (band(flags, 2) ~= 0 and mtype ~= 2) then
    fitem:add_proto_expert_info(E.bad_flags)
  end
  p = p + 2

  local sid, sl, sc = read_varint(tvb, p, hend)
  add_varint(htree, F.stream_id, tvb, p, sl, sid, sc)
  local zero = UInt64(0, 0)
  if ((mtype == 0 or mtype == 5) and sid ~= zero) or ((mtype == 1 or mtype == 2 or mtype == 4) and sid == zero) then
    htree:add_proto_expert_info(E.bad_stream)
  end
  p = p + sl
  local seq, ql, qc = read_varint(tvb, p, hend)
  add_varint(htree, F.sequence, tvb, p, ql, seq, qc)
  p = p + ql
  local plen, pl, pc = read_varint(tvb, p, hend)
  add_varint(htree, F.payload_length, tvb, p, pl, plen, pc)
  p = p + pl
  local payload_len = u64_to_number(plen)

  if p < hend then dissect_extensions(tvb, pinfo, htree, p, hend) end

  -- CRC32C
  local stored = tvb(hend, 4):uint()
  local citem = htree:add(F.crc, tvb(hend, 4))
  local status = STATUS_UNVERIFIED
  if symwire.prefs.verify_crc then
    local computed = crc32c(tvb(off, hsize - 4):raw())
    local ci = htree:add(F.crc_computed, tvb(hend, 4), computed)
    ci:set_generated()
    status = (computed == stored) and STATUS_GOOD or STATUS_BAD
  end
  local si = htree:add(F.crc_status, tvb(hend, 4), status)
  si:set_generated()
  if status == STATUS_BAD then
    citem:append_text(" [incorrect]")
    citem:add_proto_expert_info(E.crc_bad)
  elseif status == STATUS_GOOD then
    citem:append_text(" [correct]")
  end

  -- Payload
  local poff = off + hsize
  local summary = ""
  if payload_len > 0 then
    local ptree = root:add(F.payload, tvb(poff, payload_len))
    if PARAMS[mtype] then
      summary = dissect_params(tvb, pinfo, ptree, poff, payload_len, mtype)
    end
  end

  -- XXH3-64 trailer
  if band(flags, 1) ~= 0 then
    local toff = poff + payload_len
    local xitem = root:add(F.xxh3, tvb(toff, 8))
    local xstatus = STATUS_UNVERIFIED
    if symwire.prefs.verify_xxh3 then
      local computed = XXH.xxh3_64(payload_len > 0 and tvb(poff, payload_len):raw() or "")
      local xi = root:add(F.xxh3_computed, tvb(toff, 8), computed)
      xi:set_generated()
      xstatus = (computed == tvb(toff, 8):uint64()) and STATUS_GOOD or STATUS_BAD
    end
    local xs = root:add(F.xxh3_status, tvb(toff, 8), xstatus)
    xs:set_generated()
    if xstatus == STATUS_BAD then
      xitem:append_text(" [incorrect]")
      xitem:add_proto_expert_info(E.xxh3_bad)
    elseif xstatus == STATUS_GOOD then
      xitem:append_text(" [correct]")
    end
    if xstatus == STATUS_BAD then summary = (summary == "" and "" or summary .. " ") .. "[BAD XXH3]" end
  end

  if preface_at[dir] == nil or preface_at[dir] > pinfo.number then
    root:add_proto_expert_info(E.no_preface)
  end

  local tname = TYPE_NAMES[mtype] or string.format("type %d", mtype)
  local info = string.format("%s stream=%s seq=%s len=%s", tname, tostring(sid), tostring(seq), tostring(plen))
  if summary ~= "" then info = info .. " " .. summary end
  if status == STATUS_BAD then info = info .. " [BAD CRC]" end
  root:set_text(string.format("symwire %s, stream %s, seq %s, payload %s bytes%s", tname,
                              tostring(sid), tostring(seq), tostring(plen),
                              status == STATUS_BAD and " [BAD CRC]" or ""))
  return info
end

local MAGIC = { 0x89, 0x53, 0x59, 0x4D, 0x57, 0x0D, 0x0A }

local function dissect_preface(tvb, pinfo, tree, off, dir)
  local item = tree:add(symwire, tvb(off, 8))
  item:set_text("symwire preface")
  local pf = item:add(F.preface, tvb(off, 8))
  item:add(F.preface_magic, tvb(off, 7))
  local ver = tvb(off + 7, 1):uint()
  local vi = item:add(F.preface_version, tvb(off + 7, 1))
  local ok = true
  for i = 1, 7 do
    if tvb(off + i - 1, 1):uint() ~= MAGIC[i] then
      pf:add_proto_expert_info(E.bad_preface,
        string.format("Bad preface (BAD_PREFACE): byte %d is 0x%02x, expected 0x%02x", i - 1,
                      tvb(off + i - 1, 1):uint(), MAGIC[i]))
      ok = false
      break
    end
  end
  if ok and ver ~= 1 then
    vi:add_proto_expert_info(E.bad_preface, string.format("Unsupported wire version %d (UNSUPPORTED_VERSION)", ver))
  end
  if not pinfo.visited and preface_at[dir] == nil then preface_at[dir] = pinfo.number end
  if preface_at[dir] ~= nil and preface_at[dir] < pinfo.number then
    item:add_proto_expert_info(E.extra_preface)
  end
  item:append_text(string.format(", wire version %d%s", ver, ok and "" or " [BAD]"))
  return ok, string.format("Preface v%d%s", ver, ok and "" or " [BAD]")
end

-------------------------------------------------------------------------------
-- Main dissector
-------------------------------------------------------------------------------
function symwire.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  local dir = direction_key(pinfo)
  pinfo.cols.protocol:set("symwire")

  if broken_at[dir] and broken_at[dir] < pinfo.number then
    local item = tree:add(symwire, tvb())
    item:set_text("symwire: continuation of an undecodable stream")
    item:add_proto_expert_info(E.undecodable)
    pinfo.cols.info:set("symwire: undecodable continuation")
    return len
  end

  local infos = {}
  local off = 0
  while off < len do
    if not pinfo.visited and first_pdu[dir] == nil then first_pdu[dir] = pinfo.number end
    local is_first = (first_pdu[dir] == pinfo.number and off == 0)
    local b0 = tvb(off, 1):uint()
    local looks_like_frame = rshift(b0, 6) <= 1
    if b0 == 0x89 or (is_first and not looks_like_frame) then
      if len - off < 8 then
        -- Not "8 - (len - off)": a reassembly asked for in several partial
        -- steps is replayed wrongly by a second pass (tshark -2, and the
        -- GUI when a packet is selected); one more segment, then the exact
        -- length, is replayed correctly.
        pinfo.desegment_offset = off
        pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
        break
      end
      local ok, info = dissect_preface(tvb, pinfo, tree, off, dir)
      infos[#infos + 1] = info
      off = off + 8
      if not ok then
        if not pinfo.visited then broken_at[dir] = pinfo.number end
        if off < len then
          local rest = tree:add(symwire, tvb(off))
          rest:set_text("symwire: undecodable data after a bad preface")
          rest:add_proto_expert_info(E.undecodable)
        end
        off = len
      end
    else
      local total, need = frame_size(tvb, off)
      if total == nil then
        -- The header is incomplete, so the frame's length is unknown: ask
        -- for one more segment, not for `need` (see the preface above).
        pinfo.desegment_offset = off
        pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
        break
      elseif total == false then
        local item = tree:add(symwire, tvb(off))
        item:set_text("symwire: undecodable data")
        item:add_proto_expert_info(E.undecodable, "Cannot frame: " .. need)
        infos[#infos + 1] = "[undecodable: " .. need .. "]"
        if not pinfo.visited then broken_at[dir] = pinfo.number end
        off = len
      elseif len - off < total then
        pinfo.desegment_offset = off
        pinfo.desegment_len = total - (len - off)
        break
      else
        infos[#infos + 1] = dissect_frame(tvb, pinfo, tree, off, total, dir)
        off = off + total
      end
    end
  end
  if #infos > 0 then
    pinfo.cols.info:set(table.concat(infos, ", "))
  end
  return len
end

-------------------------------------------------------------------------------
-- Registration: TCP port preference, Decode As, heuristic on the preface
-------------------------------------------------------------------------------
local tcp_port_table = DissectorTable.get("tcp.port")
local registered_port = DEFAULT_PORT
tcp_port_table:add(registered_port, symwire)
tcp_port_table:add_for_decode_as(symwire)

function symwire.prefs_changed()
  local port = symwire.prefs.port
  if port ~= registered_port then
    if registered_port ~= 0 then tcp_port_table:remove(registered_port, symwire) end
    registered_port = port
    if port ~= 0 then tcp_port_table:add(port, symwire) end
  end
end

local function heuristic(tvb, pinfo, tree)
  if tvb:len() < 8 then return false end
  for i = 1, 7 do
    if tvb(i - 1, 1):uint() ~= MAGIC[i] then return false end
  end
  pinfo.conversation = symwire
  symwire.dissector(tvb, pinfo, tree)
  return true
end
symwire:register_heuristic("tcp", heuristic)
