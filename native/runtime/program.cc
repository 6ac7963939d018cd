#include "runtime/program.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <unordered_map>
#include <unordered_set>

namespace latte {

namespace {
constexpr size_t kAlign = 256;  // CUDA's allocation alignment: vector loads stay aligned
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

// Each intermediate lives from the op that writes it to the last op that reads it (inclusive, so an
// op's outputs never share memory with its inputs). Walking the ops in order, the buffers that died
// before op i go back to a free list (merged with their neighbours), then op i's outputs take the first
// free range that fits (first fit: a scan of the free list), growing the arena at its end when none
// does.
void Program::plan_memory() {
  std::unordered_set<const Buffer*> exclusive;
  for (auto& t : outputs) exclusive.insert(t.buf.get());
  struct Life {
    Buffer* buf;
    size_t bytes, first, last, offset = 0;
  };
  std::unordered_map<const Buffer*, size_t> index;
  std::vector<Life> lives;
  for (size_t i = 0; i < ops.size(); i++) {
    for (const Buffer* b : ops[i].reads) {
      auto it = index.find(b);
      if (it != index.end()) lives[it->second].last = i;
    }
    for (auto& [b, bytes] : ops[i].writes) {
      if (exclusive.count(b)) {
        own.emplace_back(b, bytes);
        continue;
      }
      if (!bytes) continue;  // nothing to place (its data stays null)
      index[b] = lives.size();
      lives.push_back({b, bytes, i, i});
    }
  }
  std::vector<std::vector<size_t>> dies(ops.size());  // lives whose last use is op i
  for (size_t j = 0; j < lives.size(); j++) dies[lives[j].last].push_back(j);
  std::map<size_t, size_t> free_ranges;  // offset -> size, never adjacent (merged)
  size_t next = 0;                        // lives are created in op order
  for (size_t i = 0; i < ops.size(); i++) {
    if (i > 0)
      for (size_t j : dies[i - 1]) {  // dead after op i - 1: their range is free from op i on
        size_t lo = lives[j].offset, hi = lo + round_up(lives[j].bytes);
        auto after = free_ranges.lower_bound(lo);
        if (after != free_ranges.end() && after->first == hi) {
          hi += after->second;
          free_ranges.erase(after);
        }
        auto before = free_ranges.lower_bound(lo);
        if (before != free_ranges.begin() && std::prev(before)->first + std::prev(before)->second == lo) {
          --before;
          lo = before->first;
          free_ranges.erase(before);
        }
        free_ranges[lo] = hi - lo;
      }
    for (; next < lives.size() && lives[next].first == i; next++) {
      const size_t need = round_up(lives[next].bytes);
      auto fit = std::find_if(free_ranges.begin(), free_ranges.end(), [&](const auto& r) { return r.second >= need; });
      if (fit != free_ranges.end()) {
        lives[next].offset = fit->first;
        const size_t lo = fit->first + need, rest = fit->second - need;
        free_ranges.erase(fit);
        if (rest) free_ranges[lo] = rest;
      } else if (!free_ranges.empty() && free_ranges.rbegin()->first + free_ranges.rbegin()->second == arena_bytes) {
        lives[next].offset = free_ranges.rbegin()->first;  // the free tail grows into the new size
        free_ranges.erase(std::prev(free_ranges.end()));
        arena_bytes = lives[next].offset + need;
      } else {
        lives[next].offset = arena_bytes;
        arena_bytes += need;
      }
    }
  }
  for (auto& L : lives) placed.push_back({L.buf, L.offset, L.bytes});
}

// Idempotent: an allocation that fails (E_OOM) leaves what was allocated in place for the next try.
void Program::allocate(MemoryPool& pool) {
  if (arena_bytes && !arena->data) pool.allocate(*arena, arena_bytes);
  for (auto& p : placed) {  // borrowed: these buffers have no pool, so they never free the arena's memory
    p.buf->data = p.bytes ? static_cast<uint8_t*>(arena->data) + p.offset : nullptr;
    p.buf->bytes = p.bytes;
  }
  for (auto& [b, bytes] : own)
    if (!b->data) pool.allocate(*b, bytes);
  for (auto& t : inputs)
    if (!t.buf->data) pool.allocate(*t.buf, t.nbytes());
  allocated = true;
}

}  // namespace latte
