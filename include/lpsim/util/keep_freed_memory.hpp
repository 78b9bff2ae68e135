#pragma once
// A forward allocates and frees the same large matrices again and again (a score matrix per head, the LM head's
// logits). glibc gives blocks over its mmap threshold back to the kernel on free and trims the heap top, so each
// forward faults the same pages in again, serially in the kernel: 16% of a GPT-2-small forward at 1024 tokens on
// this 2-core machine, ~10% of a GPU-assisted one on 16 threads (docs/CUDA.md). The executables call this once
// at start: freed memory stays with the process for the next allocation. No-op elsewhere than glibc.
namespace lpsim {

void keep_freed_memory();

}  // namespace lpsim
