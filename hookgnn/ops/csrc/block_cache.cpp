// A scoped caching allocator for large CPU blocks (see hookgnn/ops/block_cache.py).
//
// While installed (c10::SetCPUAllocator), every CPU allocation of at least `min_bytes` is
// rounded up to a multiple of 2 MiB (of 256 KiB below 4 MiB) and served from a list of idle blocks of exactly that
// size, or else mapped fresh (mmap, 2 MiB-aligned, madvise(MADV_HUGEPAGE) when asked); when
// its tensor dies the block goes back to the idle list, unless the idle bytes would then
// exceed `cap_bytes`, in which case the oldest idle blocks are unmapped first (and the
// block itself if it alone is above the cap). Smaller allocations go to the allocator that
// was installed before, whose pointers this allocator hands out under its own deleter.
//
// Lifetime: the allocator is one object that is never destroyed, so a tensor made inside
// the scope may die after it (its block is then unmapped) and a tensor made before the
// scope dies through its own deleter. uninstall() restores the previous allocator (when
// ours is still the current one) and unmaps the idle blocks. One mutex guards the lists:
// torch frees tensors from its worker threads.

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <pybind11/pybind11.h>

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace {

constexpr size_t kHuge = size_t{2} << 20;  // 2 MiB: the rounding, the alignment, one huge page

constexpr size_t kFine = size_t{256} << 10;  // below 2 huge pages, sizes are rounded to 256 KiB

size_t round_up(size_t n) {
  size_t step = n >= 2 * kHuge ? kHuge : kFine;
  return (n + step - 1) / step * step;
}

void* map_block(size_t bytes, bool huge) {
  // Map one huge page more than asked, keep the 2 MiB-aligned part, unmap the rest.
  void* raw = mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kHuge - 1) / kHuge * kHuge;
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + bytes + kHuge;
  if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - aligned - bytes);
#ifdef MADV_HUGEPAGE
  if (huge) madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
#endif
  return reinterpret_cast<void*>(aligned);
}

void block_cache_delete(void* ptr);

struct BlockCache final : public c10::Allocator {
  std::mutex mutex;
  bool active = false;
  bool huge = false;
  size_t min_bytes = 0;
  size_t cap_bytes = 0;
  c10::Allocator* previous = nullptr;
  c10::DeleterFnPtr previous_delete = nullptr;
  std::unordered_map<void*, size_t> live;      // blocks handed out: pointer -> rounded size
  std::list<std::pair<void*, size_t>> idle;    // freed blocks, oldest first
  size_t idle_bytes = 0, live_bytes = 0, peak_idle = 0;
  int64_t hits = 0, misses = 0, evictions = 0;

  c10::DataPtr allocate(size_t n) override {
    c10::Allocator* prev;
    {
      std::lock_guard<std::mutex> lock(mutex);
      prev = previous;
      if (active && n >= min_bytes) {
        size_t bytes = round_up(n);
        void* found = nullptr;
        for (auto it = idle.rbegin(); it != idle.rend(); ++it) {  // the most recently freed first
          if (it->second == bytes) {
            found = it->first;
            idle.erase(std::next(it).base());
            idle_bytes -= bytes;
            break;
          }
        }
        if (found == nullptr) {
          found = map_block(bytes, huge);
          if (found == nullptr) throw std::bad_alloc();
          ++misses;
        } else {
          ++hits;
        }
        live.emplace(found, bytes);
        live_bytes += bytes;
        return {found, found, &block_cache_delete, c10::Device(c10::DeviceType::CPU)};
      }
    }
    c10::DataPtr inner = prev->allocate(n);
    if (inner.get() == inner.get_context() && inner.get_deleter() == previous_delete && inner.get() != nullptr) {
      void* p = inner.release_context();
      return {p, p, &block_cache_delete, c10::Device(c10::DeviceType::CPU)};
    }
    return inner;  // an allocator with its own contexts: its pointer keeps its deleter
  }

  c10::DeleterFnPtr raw_deleter() const override { return &block_cache_delete; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Called for every pointer this allocator handed out.
  void release(void* ptr) {
    if (ptr == nullptr) return;
    std::list<std::pair<void*, size_t>> drop;
    bool ours = false;
    if ((reinterpret_cast<uintptr_t>(ptr) & (kHuge - 1)) == 0) {  // our blocks are 2 MiB-aligned
      std::lock_guard<std::mutex> lock(mutex);
      auto it = live.find(ptr);
      if (it != live.end()) {
        ours = true;
        size_t bytes = it->second;
        live.erase(it);
        live_bytes -= bytes;
        if (!active || bytes > cap_bytes) {
          drop.emplace_back(ptr, bytes);
        } else {
          while (idle_bytes + bytes > cap_bytes) {  // make room: unmap the oldest idle blocks
            drop.splice(drop.end(), idle, idle.begin());
            idle_bytes -= drop.back().second;
            ++evictions;
          }
          idle.emplace_back(ptr, bytes);
          idle_bytes += bytes;
          if (idle_bytes > peak_idle) peak_idle = idle_bytes;
        }
      }
    }
    if (!ours) {
      previous_delete(ptr);
      return;
    }
    for (auto& b : drop) munmap(b.first, b.second);
  }

  size_t trim_locked(std::list<std::pair<void*, size_t>>& drop) {
    size_t bytes = idle_bytes;
    drop.splice(drop.end(), idle);
    idle_bytes = 0;
    return bytes;
  }
};

BlockCache& cache() {
  static auto* instance = new BlockCache();  // never destroyed: blocks may die after the scope
  return *instance;
}

void block_cache_delete(void* ptr) { cache().release(ptr); }

// Install the cache as the CPU allocator; false if another allocator with a higher
// priority keeps its place (then nothing changed).
bool install(int64_t min_bytes, int64_t cap_bytes, bool huge) {
  if (min_bytes < 1 || cap_bytes < 0) throw std::invalid_argument("min_bytes must be >= 1 and cap_bytes >= 0");
  BlockCache& c = cache();
  c10::Allocator* current = c10::GetCPUAllocator();
  if (current == &c) throw std::runtime_error("the block cache is already installed");
  c10::DeleterFnPtr current_delete = current->raw_deleter();
  if (current_delete == nullptr) return false;  // no raw deleter: small pointers could not be re-wrapped
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.previous_delete != nullptr && c.previous_delete != current_delete && !c.live.empty())
      throw std::runtime_error("the CPU allocator changed while blocks of an earlier scope are alive");
    c.previous = current;
    c.previous_delete = current_delete;
    c.min_bytes = static_cast<size_t>(min_bytes);
    c.cap_bytes = static_cast<size_t>(cap_bytes);
    c.huge = huge;
    c.active = true;
    c.hits = c.misses = c.evictions = 0;
    c.peak_idle = c.idle_bytes;
  }
  c10::SetCPUAllocator(&c, 0);
  if (c10::GetCPUAllocator() != &c) {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.active = false;
    return false;
  }
  return true;
}

// Restore the previous allocator (if ours is still current) and unmap the idle blocks;
// returns the bytes unmapped.
int64_t uninstall() {
  BlockCache& c = cache();
  std::list<std::pair<void*, size_t>> drop;
  size_t bytes;
  c10::Allocator* prev;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.active = false;
    prev = c.previous;
    bytes = c.trim_locked(drop);
  }
  if (prev != nullptr && c10::GetCPUAllocator() == &c) c10::SetCPUAllocator(prev, 0);
  for (auto& b : drop) munmap(b.first, b.second);
  return static_cast<int64_t>(bytes);
}

bool is_installed() { return c10::GetCPUAllocator() == &cache(); }

pybind11::dict stats() {
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  pybind11::dict d;
  d["active"] = c.active;
  d["hits"] = c.hits;
  d["misses"] = c.misses;
  d["evictions"] = c.evictions;
  d["idle_bytes"] = static_cast<int64_t>(c.idle_bytes);
  d["idle_blocks"] = static_cast<int64_t>(c.idle.size());
  d["peak_idle_bytes"] = static_cast<int64_t>(c.peak_idle);
  d["live_bytes"] = static_cast<int64_t>(c.live_bytes);
  d["live_blocks"] = static_cast<int64_t>(c.live.size());
  d["cap_bytes"] = static_cast<int64_t>(c.cap_bytes);
  d["min_bytes"] = static_cast<int64_t>(c.min_bytes);
  return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("install", &install, "install the block cache as the CPU allocator");
  m.def("uninstall", &uninstall, "restore the previous CPU allocator, unmap idle blocks");
  m.def("is_installed", &is_installed, "whether the block cache is the current CPU allocator");
  m.def("stats", &stats, "counters of the block cache");
}
