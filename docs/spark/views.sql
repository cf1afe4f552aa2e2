-- mmap-capture views for Spark SQL: the tables and views of `mmap-analyze sql` over capture
-- files as they are (no conversion), with nanosecond times kept exact.
--
-- Spark (3.x, 4.x) refuses the format's INT64 TIMESTAMP(NANOS, UTC) columns ("Illegal Parquet
-- type: INT64 (TIMESTAMP(NANOS,true))") unless spark.sql.legacy.parquet.nanosAsLong=true, which
-- reads them as BIGINT nanoseconds. These views give them back as TIMESTAMPs (`ts`, `ts_exit`:
-- microseconds, what a Spark TIMESTAMP holds, the nanoseconds truncated) and keep the exact
-- nanoseconds beside them (`ts_ns`, `ts_exit_ns`, and `dur_ns` computed from those).
--
-- Use (the PySpark loader docs/spark/mmap_views.py does these steps, the variables included):
--   1. start the session with spark.sql.legacy.parquet.nanosAsLong=true (the SET below does it
--      for this session; a --conf or SparkSession.builder.config works as well);
--   2. SET mmap_captures=PATH: a capture file, a directory of segments, a glob, or the root of a
--      host=H/date=D tree (s3a://bucket/captures/ included); `host` and `date` then become
--      columns (Spark's partition discovery) and filters on them skip whole directories;
--   3. say which partition columns the path has, for the views' last columns (Spark 3.5 has no
--      `SELECT * EXCEPT`, so every view lists its columns):
--        a host=H/date=D tree:  SET mmap_partition_columns=host, date
--                               SET mmap_partition_names=host, date
--        a flat directory:      SET mmap_partition_columns=CAST(NULL AS STRING) AS host
--                               SET mmap_partition_names=host
--   4. run this file's statements, in order.
--
-- Tested with PySpark 4.3.0 (tests/tests/end_to_end/spark.rs) and 3.5.7 (by hand).
--
-- What differs from `mmap-analyze sql` (docs/ANALYZE.md, "Tables and views"):
--   - `ts`/`ts_exit` are microsecond TIMESTAMPs; use `ts_ns`, `ts_exit_ns`, `dur_ns` for exact
--     nanoseconds (a filter on `ts_ns` also reaches the Parquet statistics).
--   - The unsigned 64-bit columns (`addr`, `len`, `prot`, `flags`, `off`, `cgroup_id`, `file_dev`,
--     `file_ino`, `new_addr`, `new_len`, `lost_count`) read as DECIMAL(20,0), exact; the unsigned
--     32-bit ones (`pid`, `tid`, `cpu`, ...) as BIGINT.
--   - `file` is the file's full path (`input_file_name()`, a URL); `capture_id` and `host` live
--     in the Parquet key-value metadata, which Spark SQL does not show: `host` is the host=H
--     directory level of a partitioned tree (NULL in a flat directory), `capture_id` is not there.
--   - The views have mmap-analyze's columns in its order, `ts_ns`/`ts_exit_ns` added after the
--     TIMESTAMPs, and end with `file` and the partition columns; `mmap_events` has them all.
--   - `prot_names`, `flags_names` and `errno_name` are columns (the same text as mmap-analyze's
--     functions of those names), computed by the SQL expressions below; `mmap_errno_names` is
--     the errno table they use.
--   - Files of several format versions together: the columns an older minor lacks read as NULL,
--     as in mmap-analyze (mmap_raw declares the columns).

SET spark.sql.legacy.parquet.nanosAsLong=true;

-- Every capture under ${mmap_captures}, as stored: the format's columns (docs/FORMAT.md) with
-- the types Spark reads them as (times BIGINT nanoseconds with nanosAsLong; UInt64 DECIMAL(20,0),
-- UInt32 BIGINT), declared so that a file of an older minor reads the columns it lacks as NULL
-- whatever files the directory holds. Partition columns (host=H/date=D) come after them.
CREATE OR REPLACE TEMPORARY VIEW mmap_raw (
  kind STRING, syscall STRING, ts BIGINT, ts_exit BIGINT, cpu BIGINT, pid BIGINT, tid BIGINT,
  ppid BIGINT, uid BIGINT, gid BIGINT, comm STRING, cgroup_id DECIMAL(20,0),
  addr DECIMAL(20,0), len DECIMAL(20,0), prot DECIMAL(20,0), flags DECIMAL(20,0), fd INT,
  off DECIMAL(20,0), ret BIGINT, errno INT, file_dev DECIMAL(20,0), file_ino DECIMAL(20,0),
  file_name STRING, source STRING, new_addr DECIMAL(20,0), new_len DECIMAL(20,0),
  child_pid BIGINT, exit_code INT, file_path STRING, path_source STRING,
  path_truncated BOOLEAN, file_deleted BOOLEAN, file_memfd BOOLEAN, cgroup_path STRING,
  pidns_ino BIGINT, ns_pid BIGINT, ns_tid BIGINT, lost_count DECIMAL(20,0), path_lossy BOOLEAN,
  stack_id DECIMAL(20,0), frame_index BIGINT, frame_addr DECIMAL(20,0), frame_module STRING,
  frame_build_id STRING, frame_offset DECIMAL(20,0), frame_function STRING, frame_file STRING,
  frame_line BIGINT, symbol_source STRING
)
USING parquet
OPTIONS (path '${mmap_captures}', pathGlobFilter '*.parquet');

-- Linux errno names (x86_64, the asm-generic table, and the kernel-internal 512..529), as
-- mmap-format's names::errno_name has them.
CREATE OR REPLACE TEMPORARY VIEW mmap_errno_names (errno_number, errno_name) AS
VALUES
  (1, 'EPERM'), (2, 'ENOENT'), (3, 'ESRCH'), (4, 'EINTR'), (5, 'EIO'), (6, 'ENXIO'), (7, 'E2BIG'),
  (8, 'ENOEXEC'), (9, 'EBADF'), (10, 'ECHILD'), (11, 'EAGAIN'), (12, 'ENOMEM'), (13, 'EACCES'),
  (14, 'EFAULT'), (15, 'ENOTBLK'), (16, 'EBUSY'), (17, 'EEXIST'), (18, 'EXDEV'), (19, 'ENODEV'),
  (20, 'ENOTDIR'), (21, 'EISDIR'), (22, 'EINVAL'), (23, 'ENFILE'), (24, 'EMFILE'), (25, 'ENOTTY'),
  (26, 'ETXTBSY'), (27, 'EFBIG'), (28, 'ENOSPC'), (29, 'ESPIPE'), (30, 'EROFS'), (31, 'EMLINK'),
  (32, 'EPIPE'), (33, 'EDOM'), (34, 'ERANGE'), (35, 'EDEADLK'), (36, 'ENAMETOOLONG'),
  (37, 'ENOLCK'), (38, 'ENOSYS'), (39, 'ENOTEMPTY'), (40, 'ELOOP'), (42, 'ENOMSG'), (43, 'EIDRM'),
  (44, 'ECHRNG'), (45, 'EL2NSYNC'), (46, 'EL3HLT'), (47, 'EL3RST'), (48, 'ELNRNG'),
  (49, 'EUNATCH'), (50, 'ENOCSI'), (51, 'EL2HLT'), (52, 'EBADE'), (53, 'EBADR'), (54, 'EXFULL'),
  (55, 'ENOANO'), (56, 'EBADRQC'), (57, 'EBADSLT'), (59, 'EBFONT'), (60, 'ENOSTR'),
  (61, 'ENODATA'), (62, 'ETIME'), (63, 'ENOSR'), (64, 'ENONET'), (65, 'ENOPKG'), (66, 'EREMOTE'),
  (67, 'ENOLINK'), (68, 'EADV'), (69, 'ESRMNT'), (70, 'ECOMM'), (71, 'EPROTO'), (72, 'EMULTIHOP'),
  (73, 'EDOTDOT'), (74, 'EBADMSG'), (75, 'EOVERFLOW'), (76, 'ENOTUNIQ'), (77, 'EBADFD'),
  (78, 'EREMCHG'), (79, 'ELIBACC'), (80, 'ELIBBAD'), (81, 'ELIBSCN'), (82, 'ELIBMAX'),
  (83, 'ELIBEXEC'), (84, 'EILSEQ'), (85, 'ERESTART'), (86, 'ESTRPIPE'), (87, 'EUSERS'),
  (88, 'ENOTSOCK'), (89, 'EDESTADDRREQ'), (90, 'EMSGSIZE'), (91, 'EPROTOTYPE'),
  (92, 'ENOPROTOOPT'), (93, 'EPROTONOSUPPORT'), (94, 'ESOCKTNOSUPPORT'), (95, 'EOPNOTSUPP'),
  (96, 'EPFNOSUPPORT'), (97, 'EAFNOSUPPORT'), (98, 'EADDRINUSE'), (99, 'EADDRNOTAVAIL'),
  (100, 'ENETDOWN'), (101, 'ENETUNREACH'), (102, 'ENETRESET'), (103, 'ECONNABORTED'),
  (104, 'ECONNRESET'), (105, 'ENOBUFS'), (106, 'EISCONN'), (107, 'ENOTCONN'), (108, 'ESHUTDOWN'),
  (109, 'ETOOMANYREFS'), (110, 'ETIMEDOUT'), (111, 'ECONNREFUSED'), (112, 'EHOSTDOWN'),
  (113, 'EHOSTUNREACH'), (114, 'EALREADY'), (115, 'EINPROGRESS'), (116, 'ESTALE'),
  (117, 'EUCLEAN'), (118, 'ENOTNAM'), (119, 'ENAVAIL'), (120, 'EISNAM'), (121, 'EREMOTEIO'),
  (122, 'EDQUOT'), (123, 'ENOMEDIUM'), (124, 'EMEDIUMTYPE'), (125, 'ECANCELED'), (126, 'ENOKEY'),
  (127, 'EKEYEXPIRED'), (128, 'EKEYREVOKED'), (129, 'EKEYREJECTED'), (130, 'EOWNERDEAD'),
  (131, 'ENOTRECOVERABLE'), (132, 'ERFKILL'), (133, 'EHWPOISON'), (512, 'ERESTARTSYS'),
  (513, 'ERESTARTNOINTR'), (514, 'ERESTARTNOHAND'), (515, 'ENOIOCTLCMD'),
  (516, 'ERESTART_RESTARTBLOCK'), (517, 'EPROBE_DEFER'), (518, 'EOPENSTALE'), (519, 'ENOPARAM'),
  (521, 'EBADHANDLE'), (522, 'ENOTSYNC'), (523, 'EBADCOOKIE'), (524, 'ENOTSUPP'),
  (525, 'ETOOSMALL'), (526, 'ESERVERFAULT'), (527, 'EBADTYPE'), (528, 'EJUKEBOX'),
  (529, 'EIOCBQUEUED')
;

-- Every row of every capture, with exact times, the decoded names and the input columns: what
-- the views below select from.
CREATE OR REPLACE TEMPORARY VIEW mmap_events AS
WITH signed AS (
  -- prot and flags as 64-bit two's complement, for the bitwise operators (DECIMAL has none).
  SELECT *,
    input_file_name() AS file,
    CAST(IF(prot >= 9223372036854775808, prot - 18446744073709551616, prot) AS BIGINT) AS _prot,
    CAST(IF(flags >= 9223372036854775808, flags - 18446744073709551616, flags) AS BIGINT)
      AS _flags
  FROM mmap_raw
),
huge AS (
  -- With MAP_HUGETLB, bits 26..31 are log2 of the huge page size (named from 2^10 up).
  SELECT *,
    _flags & 262144 <> 0 AND (shiftrightunsigned(_flags, 26) & 63) >= 10 AS _huge,
    shiftrightunsigned(_flags, 26) & 63 AS _huge_shift
  FROM signed
),
decoded AS (
  SELECT h.*,
    IF(_huge, _flags & ~3 & ~4227858432, _flags & ~3) AS _map_rest,
    n.errno_name
  FROM huge h LEFT JOIN mmap_errno_names n ON h.errno = n.errno_number
)
SELECT
  kind, syscall,
  timestamp_micros(ts div 1000) AS ts,
  timestamp_micros(ts_exit div 1000) AS ts_exit,
  ts AS ts_ns,
  ts_exit AS ts_exit_ns,
  ts_exit - ts AS dur_ns,
  cpu, pid, tid, ppid, uid, gid, comm, cgroup_id,
  addr, len, prot,
  CASE
    WHEN prot IS NULL THEN NULL
    WHEN _prot = 0 THEN 'PROT_NONE'
    ELSE concat_ws('|',
      IF(_prot & 1 <> 0, 'PROT_READ', NULL),
      IF(_prot & 2 <> 0, 'PROT_WRITE', NULL),
      IF(_prot & 4 <> 0, 'PROT_EXEC', NULL),
      IF(_prot & 8 <> 0, 'PROT_SEM', NULL),
      IF(_prot & 16777216 <> 0, 'PROT_GROWSDOWN', NULL),
      IF(_prot & 33554432 <> 0, 'PROT_GROWSUP', NULL),
      IF(_prot & ~50331663 <> 0, concat('0x', lower(hex(_prot & ~50331663))), NULL))
  END AS prot_names,
  flags,
  CASE
    WHEN flags IS NULL THEN NULL
    WHEN _flags = 0 THEN '0'
    WHEN syscall = 'mremap' THEN concat_ws('|',
      IF(_flags & 1 <> 0, 'MREMAP_MAYMOVE', NULL),
      IF(_flags & 2 <> 0, 'MREMAP_FIXED', NULL),
      IF(_flags & 4 <> 0, 'MREMAP_DONTUNMAP', NULL),
      IF(_flags & ~7 <> 0, concat('0x', lower(hex(_flags & ~7))), NULL))
    ELSE concat_ws('|',
      CASE _flags & 3
        WHEN 1 THEN 'MAP_SHARED' WHEN 2 THEN 'MAP_PRIVATE' WHEN 3 THEN 'MAP_SHARED_VALIDATE'
      END,
      IF(_map_rest & 16 <> 0, 'MAP_FIXED', NULL),
      IF(_map_rest & 32 <> 0, 'MAP_ANONYMOUS', NULL),
      IF(_map_rest & 64 <> 0, 'MAP_32BIT', NULL),
      IF(_map_rest & 256 <> 0, 'MAP_GROWSDOWN', NULL),
      IF(_map_rest & 2048 <> 0, 'MAP_DENYWRITE', NULL),
      IF(_map_rest & 4096 <> 0, 'MAP_EXECUTABLE', NULL),
      IF(_map_rest & 8192 <> 0, 'MAP_LOCKED', NULL),
      IF(_map_rest & 16384 <> 0, 'MAP_NORESERVE', NULL),
      IF(_map_rest & 32768 <> 0, 'MAP_POPULATE', NULL),
      IF(_map_rest & 65536 <> 0, 'MAP_NONBLOCK', NULL),
      IF(_map_rest & 131072 <> 0, 'MAP_STACK', NULL),
      IF(_map_rest & 262144 <> 0, 'MAP_HUGETLB', NULL),
      IF(_map_rest & 524288 <> 0, 'MAP_SYNC', NULL),
      IF(_map_rest & 1048576 <> 0, 'MAP_FIXED_NOREPLACE', NULL),
      IF(_map_rest & 67108864 <> 0, 'MAP_UNINITIALIZED', NULL),
      CASE
        WHEN NOT _huge THEN NULL
        WHEN _huge_shift < 20 THEN concat('MAP_HUGE_', shiftleft(CAST(1 AS BIGINT), _huge_shift - 10), 'KB')
        WHEN _huge_shift < 30 THEN concat('MAP_HUGE_', shiftleft(CAST(1 AS BIGINT), _huge_shift - 20), 'MB')
        ELSE concat('MAP_HUGE_', shiftleft(CAST(1 AS BIGINT), _huge_shift - 30), 'GB')
      END,
      IF(_map_rest & ~69204336 <> 0, concat('0x', lower(hex(_map_rest & ~69204336))), NULL))
  END AS flags_names,
  fd, off, ret, errno, errno_name,
  file_dev, file_ino, file_name, source, new_addr, new_len, child_pid, exit_code, file_path,
  path_source, path_truncated, file_deleted, file_memfd, cgroup_path, pidns_ino, ns_pid, ns_tid,
  lost_count, path_lossy,
  stack_id, frame_index, frame_addr, frame_module, frame_build_id, frame_offset, frame_function,
  frame_file, frame_line, symbol_source,
  file, ${mmap_partition_columns}
FROM decoded;

-- `events`: the capture format's columns (docs/FORMAT.md order), `ts_ns` and `ts_exit_ns`
-- after `ts_exit`, then the input columns.
CREATE OR REPLACE TEMPORARY VIEW events AS
SELECT
  kind, syscall, ts, ts_exit, ts_ns, ts_exit_ns, cpu, pid, tid, ppid, uid, gid, comm, cgroup_id,
  addr, len, prot, flags, fd, off, ret, errno, file_dev, file_ino, file_name, source, new_addr,
  new_len, child_pid, exit_code, file_path, path_source, path_truncated, file_deleted,
  file_memfd, cgroup_path, pidns_ino, ns_pid, ns_tid, lost_count, path_lossy,
  stack_id, frame_index, frame_addr, frame_module, frame_build_id, frame_offset, frame_function,
  frame_file, frame_line, symbol_source,
  file, ${mmap_partition_names}
FROM mmap_events;

-- The views of `mmap-analyze sql`, one kind of row each, their columns in the same groups and
-- order (ANALYZE.md, "Tables and views"); `ts_ns`/`ts_exit_ns` follow the TIMESTAMPs.
CREATE OR REPLACE TEMPORARY VIEW calls AS
SELECT
  ts, ts_exit, ts_ns, ts_exit_ns, dur_ns, syscall,
  pid, tid, ppid, uid, gid, comm, cpu,
  addr, len, new_addr, new_len, prot, prot_names, flags, flags_names, fd, off, ret, errno,
  errno_name,
  file_dev, file_ino, file_name, file_path, path_source, path_truncated, path_lossy,
  file_deleted, file_memfd,
  source, stack_id,
  cgroup_id, cgroup_path, pidns_ino, ns_pid, ns_tid,
  file, ${mmap_partition_names}
FROM mmap_events WHERE kind = 'syscall';

CREATE OR REPLACE TEMPORARY VIEW lifecycle AS
SELECT
  ts, ts_ns, kind,
  pid, tid, ppid, uid, gid, comm, cpu,
  child_pid, exit_code, file_name, file_path, path_source, path_truncated, path_lossy, source,
  cgroup_id, cgroup_path, pidns_ino, ns_pid, ns_tid,
  file, ${mmap_partition_names}
FROM mmap_events WHERE kind IN ('fork', 'exec', 'exit');

CREATE OR REPLACE TEMPORARY VIEW snapshots AS
SELECT
  ts, ts_ns, source,
  pid, tid, ppid, uid, gid, comm, cpu,
  addr, len, prot, prot_names, flags, flags_names, off,
  file_dev, file_ino, file_name, file_path, path_source, path_truncated, path_lossy,
  file_deleted, file_memfd,
  cgroup_id, cgroup_path, pidns_ino, ns_pid, ns_tid,
  file, ${mmap_partition_names}
FROM mmap_events WHERE kind = 'snapshot';

CREATE OR REPLACE TEMPORARY VIEW lost AS
SELECT
  ts, ts_exit, ts_ns, ts_exit_ns, cpu, lost_count, source,
  file, ${mmap_partition_names}
FROM mmap_events WHERE kind = 'lost';
