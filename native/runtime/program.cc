#include "runtime/program.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace latte {

namespace {
constexpr size_t kAlign = 256;  // CUDA's allocation alignment: vector loads stay aligned
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

// Each intermediate lives from the op that writes it to the last op that reads it (inclusive, so an
// op's outputs never share memory with its inputs). Largest first, each goes at the lowest offset
// that overlaps no placed buffer whose lifetime meets its own.
void Program::plan_memory() {
  std::unordered_set<const Buffer*> exclusive;
  for (auto& t : outputs) exclusive.insert(t.buf.get());
  struct Life {
    Buffer* buf;
    size_t bytes;
    size_t first, last;
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
      index[b] = lives.size();
      lives.push_back({b, bytes, i, i});
    }
  }
  std::vector<size_t> order(lives.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lives[a].bytes > lives[b].bytes; });
  std::vector<size_t> done;  // indices into lives, with offsets in `offset`
  std::vector<size_t> offset(lives.size(), 0);
  for (size_t i : order) {
    const Life& L = lives[i];
    // the placed buffers alive at the same time, by offset
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t j : done)
      if (lives[j].first <= L.last && L.first <= lives[j].last) busy.emplace_back(offset[j], offset[j] + round_up(lives[j].bytes));
    std::sort(busy.begin(), busy.end());
    size_t at = 0;
    for (auto& [lo, hi] : busy) {
      if (at + round_up(L.bytes) <= lo) break;
      at = std::max(at, hi);
    }
    offset[i] = at;
    done.push_back(i);
    arena_bytes = std::max(arena_bytes, at + round_up(L.bytes));
  }
  for (size_t i = 0; i < lives.size(); i++) placed.push_back({lives[i].buf, offset[i], lives[i].bytes});
}

void Program::allocate(MemoryPool& pool) {
  if (arena_bytes) pool.allocate(*arena, arena_bytes);
  for (auto& p : placed) {  // borrowed: these buffers have no pool, so they never free the arena's memory
    p.buf->data = static_cast<uint8_t*>(arena->data) + p.offset;
    p.buf->bytes = p.bytes;
  }
  for (auto& [b, bytes] : own) pool.allocate(*b, bytes);
  for (auto& t : inputs) pool.allocate(*t.buf, t.nbytes());
  allocated = true;
}

}  // namespace latte
