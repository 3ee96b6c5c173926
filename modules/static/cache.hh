// Per-worker cache of ready-made 200 responses for small files: head and body in
// one buffer, so a hit is one send with no copy. Entries are re-checked against
// the file after `valid_ms`; eviction is LRU by count and total bytes. An entry
// still being sent is freed only when its last send completes.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config.hh"

namespace atlas::static_files {

class cache;

struct entry {
    entry() = default;
    entry(const entry &) = delete;
    entry &operator=(const entry &) = delete;
    ~entry();

    cache *owner = nullptr;
    std::string key;
    std::string file_rel;   // the file re-checked for changes (an index for "dir/")
    std::string bytes;      // "HTTP/1.1 200 OK\r\n...\r\n\r\n" + body (memory entries)
    int fd = -1;            // open file (large-file entries: sent with sendfile, like
                            // nginx's open_file_cache)
    size_t head_len = 0;
    size_t date_off = 0;    // where the 29-byte Date value sits in `bytes`
    // Validators and what the headers say, for conditional and range answers.
    uint64_t size = 0;
    struct timespec mtime {};
    ino_t ino = 0;
    dev_t dev = 0;
    std::string etag;
    char last_modified[30] = {};
    std::string content_type;
    const char *encoding = nullptr;  // "br", "gzip" or null
    bool vary = false;
    bool has_br = false, has_gzip = false;  // identity entries: variants on disk
    uint64_t checked_ms = 0;
    uint32_t refs = 0;
    bool dead = false;
    entry *prev = nullptr, *next = nullptr;  // LRU, most recent first

    std::string_view body() const { return std::string_view(bytes).substr(head_len); }
};

class cache {
public:
    explicit cache(const cache_limits &l) : limits_(l) {}
    ~cache();
    cache(const cache &) = delete;
    cache &operator=(const cache &) = delete;

    entry *find(std::string_view key);
    // Takes ownership; replaces an entry with the same key. May evict others.
    entry *insert(std::unique_ptr<entry> e);
    void remove(entry *e);
    void touch(entry *e);
    void acquire(entry *e) { ++e->refs; }
    void release(entry *e);
    bool fits(uint64_t body_size) const {
        return limits_.entries > 0 && body_size <= limits_.max_file_size && body_size <= limits_.total_bytes;
    }
    bool enabled() const { return limits_.entries > 0; }

private:
    struct hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    void unlink(entry *e);
    void evict_for(uint64_t incoming);

    cache_limits limits_;
    std::unordered_map<std::string, entry *, hash, std::equal_to<>> map_;
    entry *head_ = nullptr, *tail_ = nullptr;
    uint64_t bytes_ = 0;
};

}  // namespace atlas::static_files
