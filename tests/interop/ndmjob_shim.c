/*
 * ndmjob_shim.c -- an LD_PRELOAD shim for Debian 12's Amanda ndmjob, the DMA
 * of the interoperability tests.  It fixes two bugs of the DMA, never the
 * server's answers.
 *
 * 1. Amanda builds NDMJOB with its allocator mapped to GLib's g_malloc,
 *    which returns NULL for a zero-byte request.  NDMJOB's protocol
 *    translators take that NULL for "out of memory", so the DMA never sends
 *    a message with an empty array or opaque: a zero-length TAPE_WRITE, for
 *    one, is answered locally with NOT_SUPPORTED and never reaches the
 *    server.  This shim makes g_malloc(0) return a valid one-byte block
 *    (GLib's g_free is free()).
 *
 * 2. test-tape's phase T-BWR writes a 1024-byte record of the bytes
 *    (i - 4) & 0xff, reads it back and compares byte by byte.  Debian's
 *    build (amanda-common 1:3.5.1-11+deb12u2) loads each byte read with a
 *    sign-extending load (movsbl), so every byte from 0x80 up compares
 *    unequal ("DATA 252: 0xfc => 0xfffffffc") whatever the server returned,
 *    and the step fails against any server that gets that far.  When the
 *    loaded libndmjob is exactly that build (the instruction and its
 *    neighbours are checked byte for byte), the shim turns that one load
 *    into a zero-extending one (movzbl), the unsigned compare NDMJOB's
 *    source means.  Any other build is left alone, with a note on stderr.
 *
 * 3. test-tape's T-WRITE, T-READ and T-MTIO fill records with
 *    ndmca_test_fill_data(): a 16-byte unit {u16 file number, u16 sequence,
 *    long record number} repeated.  On LP64 the unit has four bytes of
 *    padding after the sequence that the function never sets, so the bytes
 *    written carry one call's stack garbage and the bytes expected on
 *    reading another's ("276: 0x0 => 0x7e").  The shim provides the
 *    function itself, with the same layout and the padding zeroed; NDMJOB
 *    calls it through the PLT, so this definition is the one used.
 *
 * Build: cc -shared -fPIC -o libndmjob_shim.so ndmjob_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void* g_malloc(size_t n) {
  void* p = malloc(n ? n : 1);
  if (p == NULL) {
    fprintf(stderr, "ndmjob_shim: g_malloc(%zu) failed\n", n);
    abort();
  }
  return p;
}

void ndmca_test_fill_data(char* buf, int bufsize, int recno, int fileno) {
  unsigned char unit[16];
  const uint16_t file16 = (uint16_t)fileno;
  const int64_t rec64 = recno; /* sign-extended, as the original stores it */
  uint16_t sequence = 0;
  int at = 0;
  memset(unit, 0, sizeof unit);
  memcpy(unit, &file16, sizeof file16);
  memcpy(unit + 8, &rec64, sizeof rec64);
  while (at < bufsize) {
    memcpy(unit + 2, &sequence, sizeof sequence);
    ++sequence;
    const int n = bufsize - at < (int)sizeof unit ? bufsize - at : (int)sizeof unit;
    memcpy(buf + at, unit, (size_t)n);
    at += n;
  }
}

/* Where the compare's load sits in libndmjob.so of amanda-common
 * 1:3.5.1-11+deb12u2 (sha256 988a9c18...592cc), as offsets from the
 * library's load address, and the bytes around it. */
enum { kEntryOffset = 0x1a4a0, kLoadOffset = 0x1a302 };
static const unsigned char kLoadAndNext[] = {
    0x43, 0x0f, 0xbe, 0x04, 0x3c, /* movsbl (%r12,%r15,1),%eax */
    0x44, 0x89, 0xfb,             /* mov    %r15d,%ebx */
    0x45, 0x0f, 0xb6, 0xc9,       /* movzbl %r9b,%r9d */
    0x44, 0x39, 0xc8,             /* cmp    %r9d,%eax */
};
static const unsigned char kLoadBefore[] = {
    0x45, 0x8d, 0x4f, 0xfc, /* lea -0x4(%r15),%r9d: i - 4 */
};

__attribute__((constructor)) static void fix_write_and_read_compare(void) {
  void* entry = dlsym(RTLD_DEFAULT, "ndmca_tt_basic_write_and_read");
  if (entry == NULL) return; /* not ndmjob */
  Dl_info info;
  if (dladdr(entry, &info) == 0 || info.dli_fbase == NULL) return;
  unsigned char* base = (unsigned char*)info.dli_fbase;
  unsigned char* load = base + kLoadOffset;
  /* Only the offsets of the known build are read at all. */
  if ((unsigned char*)entry != base + kEntryOffset ||
      memcmp(load - sizeof kLoadBefore, kLoadBefore, sizeof kLoadBefore) != 0 ||
      memcmp(load, kLoadAndNext, sizeof kLoadAndNext) != 0) {
    fprintf(stderr, "ndmjob_shim: unknown libndmjob build, T-BWR compare left as is\n");
    return;
  }
  const long page = sysconf(_SC_PAGESIZE);
  unsigned char* first = (unsigned char*)((uintptr_t)load & ~(uintptr_t)(page - 1));
  const size_t span = (size_t)(load + sizeof kLoadAndNext - first);
  if (mprotect(first, span, PROT_READ | PROT_WRITE) != 0) {
    perror("ndmjob_shim: mprotect");
    return;
  }
  load[2] = 0xb6; /* 0f be (movsbl) -> 0f b6 (movzbl) */
  if (mprotect(first, span, PROT_READ | PROT_EXEC) != 0) {
    perror("ndmjob_shim: mprotect");
    abort();
  }
}
