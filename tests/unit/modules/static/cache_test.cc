#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "cache.hh"

using namespace atlas::static_files;

namespace {
std::unique_ptr<entry> make(const std::string &key, size_t bytes) {
    auto e = std::make_unique<entry>();
    e->key = key;
    e->bytes.assign(bytes, 'x');
    return e;
}
}  // namespace

TEST_CASE("entries are found, replaced and evicted least recently used first") {
    cache_limits lim;
    lim.entries = 2;
    lim.total_bytes = 1000;
    cache c(lim);
    entry *a = c.insert(make("/a", 100));
    entry *b = c.insert(make("/b", 100));
    CHECK(c.find("/a") == a);
    c.touch(a);  // b is now the oldest
    c.insert(make("/c", 100));
    CHECK(c.find("/b") == nullptr);
    CHECK(c.find("/a") == a);
    CHECK(c.find("/c") != nullptr);
    (void)b;
}

TEST_CASE("total bytes bound the cache") {
    cache_limits lim;
    lim.entries = 100;
    lim.total_bytes = 250;
    cache c(lim);
    c.insert(make("/a", 100));
    c.insert(make("/b", 100));
    c.insert(make("/c", 100));  // evicts /a
    CHECK(c.find("/a") == nullptr);
    CHECK(c.fits(250));
    CHECK_FALSE(c.fits(251));
}

TEST_CASE("an entry still being sent survives removal until released") {
    cache_limits lim;
    cache c(lim);
    entry *a = c.insert(make("/a", 10));
    c.acquire(a);
    c.remove(a);
    CHECK(c.find("/a") == nullptr);
    CHECK(a->dead);
    CHECK(a->bytes.size() == 10);  // still valid memory for the send in flight
    c.release(a);                  // freed here (ASan would flag a leak or a double free)
}

TEST_CASE("replacing a key drops the old entry") {
    cache_limits lim;
    cache c(lim);
    c.insert(make("/a", 10));
    entry *n = c.insert(make("/a", 20));
    CHECK(c.find("/a") == n);
    CHECK(n->bytes.size() == 20);
}
