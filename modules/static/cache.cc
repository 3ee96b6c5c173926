#include "cache.hh"

#include <unistd.h>

namespace atlas::static_files {

entry::~entry() {
    if (fd >= 0) close(fd);
}

cache::~cache() {
    for (auto &[k, e] : map_) delete e;
}

entry *cache::find(std::string_view key) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : it->second;
}

void cache::unlink(entry *e) {
    if (e->prev) e->prev->next = e->next;
    else head_ = e->next;
    if (e->next) e->next->prev = e->prev;
    else tail_ = e->prev;
    e->prev = e->next = nullptr;
}

void cache::touch(entry *e) {
    if (head_ == e) return;
    unlink(e);
    e->next = head_;
    if (head_) head_->prev = e;
    head_ = e;
    if (!tail_) tail_ = e;
}

void cache::remove(entry *e) {
    if (e->dead) return;
    map_.erase(e->key);
    unlink(e);
    bytes_ -= e->bytes.size();
    e->dead = true;
    if (e->refs == 0) delete e;
}

void cache::release(entry *e) {
    if (--e->refs == 0 && e->dead) delete e;
}

void cache::evict_for(uint64_t incoming) {
    while (tail_ && (map_.size() + 1 > limits_.entries || bytes_ + incoming > limits_.total_bytes)) remove(tail_);
}

entry *cache::insert(std::unique_ptr<entry> e) {
    if (entry *old = find(e->key)) remove(old);
    evict_for(e->bytes.size());
    entry *raw = e.release();
    raw->owner = this;
    map_.emplace(raw->key, raw);
    bytes_ += raw->bytes.size();
    raw->next = head_;
    if (head_) head_->prev = raw;
    head_ = raw;
    if (!tail_) tail_ = raw;
    return raw;
}

}  // namespace atlas::static_files
