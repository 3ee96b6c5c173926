// Opening a file below the static root so that nothing in the request path (dot segments,
// symlinks) leads out of it.
#pragma once

namespace atlas::static_files {

// openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) read-only below `dirfd`; where openat2
// is missing (ENOSYS: valgrind, some sandboxes and seccomp profiles) open_walking. -1 and
// errno on failure.
int open_beneath(int dirfd, const char *rel);

// `rel` walked one component at a time with O_NOFOLLOW: stricter than RESOLVE_BENEATH, as
// a symlink even to a place inside the root is refused (ELOOP), but nothing escapes. `rel`
// is a normalised relative path: no empty (except a trailing one: "dir/" is dir), "."
// (except "." alone for the root) or ".." component.
int open_walking(int dirfd, const char *rel);

}  // namespace atlas::static_files
