#ifndef C_SQLITE_TUNING_H
#define C_SQLITE_TUNING_H

/// Turns off SQLite's process-wide memory statistics (SQLITE_CONFIG_MEMSTATUS). With them on
/// (the library's default), every allocation and free inside SQLite takes a global mutex to
/// count bytes; nothing in shadowd reads those counts (no sqlite3_memory_used, no soft heap
/// limit). sqlite3_config is variadic, which Swift cannot call, hence this one C function.
///
/// Returns SQLITE_OK, or SQLITE_MISUSE when SQLite was already initialised in this process
/// (a connection was opened first): the setting then stays as it was, which is harmless.
int shadow_sqlite_disable_memory_statistics(void);

#endif
