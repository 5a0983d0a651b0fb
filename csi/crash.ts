// Crash points for the crash tests: when SHOAL_CSI_CRASH_AT names this point, the driver kills
// itself with SIGKILL right there, as a power cut or an OOM kill would, so the test can check
// that a restarted driver finishes or undoes the interrupted call. Unset, it does nothing.
const at = process.env['SHOAL_CSI_CRASH_AT'] ?? '';

export function crashPoint(name: string): void {
  if (at && at === name) process.kill(process.pid, 'SIGKILL');
}
