#define _GNU_SOURCE
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double um_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

um_status um_map_file(const char *path, um_mapped_file *out, um_error *err) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return um_fail(err, UM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return um_fail(err, UM_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return um_fail(err, UM_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
        out->data = p;
        out->size = (size_t)st.st_size;
    }
    close(fd);
    return UM_OK;
}

void um_unmap_file(um_mapped_file *f) {
    if (f->data)
        munmap((void *)f->data, f->size);
    f->data = NULL;
    f->size = 0;
}

void um_mapped_file_release(const um_mapped_file *f, const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)f->data, page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (!f->data || a < base || a + n > base + f->size)
        return;
    uintptr_t first = (a + page - 1) & ~(page - 1), end = (a + n) & ~(page - 1);
    if (end > first)
        madvise((void *)first, end - first, MADV_DONTNEED);
}

um_status um_read_file(const char *path, size_t max_size, char **out, size_t *out_size, um_error *err) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return um_fail(err, UM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return um_fail(err, UM_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_size) {
        fclose(fp);
        return um_fail(err, UM_ERR_FORMAT, "%s: %lld bytes, more than the %zu allowed", path,
                       (long long)st.st_size, max_size);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return um_fail(err, UM_ERR_NOMEM, "%s: out of memory", path);
    }
    if (fread(buf, 1, n, fp) != n) {
        free(buf);
        fclose(fp);
        return um_fail(err, UM_ERR_IO, "%s: read failed", path);
    }
    fclose(fp);
    buf[n] = 0;
    *out = buf;
    if (out_size)
        *out_size = n;
    return UM_OK;
}

bool um_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

FILE *um_open_partial(const char *path, char *partial, size_t n) {
    int len = snprintf(partial, n, "%s.partial", path);
    if (len < 0 || (size_t)len >= n) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    return fopen(partial, "wb");
}

um_status um_finish_partial(FILE *fp, const char *partial, const char *path, um_status s, um_error *err) {
    if (fclose(fp) != 0 && s == UM_OK)
        s = um_fail(err, UM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (s == UM_OK && rename(partial, path) != 0)
        s = um_fail(err, UM_ERR_IO, "%s: cannot rename %s to it: %s", path, partial, strerror(errno));
    if (s != UM_OK)
        remove(partial);
    return s;
}

bool um_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void *um_aligned_alloc(size_t size) {
    void *p = NULL;
    if (size == 0)
        size = 64;
    if (posix_memalign(&p, 64, size) != 0)
        return NULL;
    memset(p, 0, size);
    return p;
}

/* The number in a one-line file (a cgroup's memory.max: "max" is none), or 0. */
static unsigned long long read_count(const char *path) {
    unsigned long long v = 0;
    FILE *fp = fopen(path, "r");
    if (fp) {
        if (fscanf(fp, "%llu", &v) != 1)
            v = 0;
        fclose(fp);
    }
    return v;
}

size_t um_memory_available(void) {
    size_t avail = 0;
    FILE *fp = fopen("/proc/meminfo", "r");
    if (fp) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, fp))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
                avail = (size_t)kb * 1024;
        fclose(fp);
    }
    if (avail == 0) /* no /proc/meminfo: free pages only, which leaves out the page cache */
        avail = (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    /* a container's limit, which /proc/meminfo does not show (cgroup v2, then v1) */
    unsigned long long max = read_count("/sys/fs/cgroup/memory.max"), used = read_count("/sys/fs/cgroup/memory.current");
    if (max == 0) {
        max = read_count("/sys/fs/cgroup/memory/memory.limit_in_bytes");
        used = read_count("/sys/fs/cgroup/memory/memory.usage_in_bytes");
    }
    if (max > 0 && max < (unsigned long long)SIZE_MAX) {
        size_t left = max > used ? (size_t)(max - used) : 0;
        avail = left < avail ? left : avail;
    }
    return avail;
}

/* Reads "Key:   123 kB" lines of /proc/self/status. */
void um_memory_usage(size_t *resident, size_t *peak) {
    size_t rss = 0, hwm = 0;
    FILE *fp = fopen("/proc/self/status", "r");
    if (fp) {
        char line[256];
        while (fgets(line, sizeof line, fp)) {
            unsigned long long kb;
            if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
                rss = (size_t)kb * 1024;
            else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
                hwm = (size_t)kb * 1024;
        }
        fclose(fp);
    }
    if (resident)
        *resident = rss;
    if (peak)
        *peak = hwm;
}
