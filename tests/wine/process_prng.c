/* bcryptprimitives.dll for Wine 8.0, which lacks it: Rust's standard library imports
   ProcessPrng from it (Windows 10+). Forwards to BCryptGenRandom, as Windows itself does. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
