/**
 * What a CLI command prints and its exit code, kept apart from process I/O so tests can
 * call the command directly; `printResult` is the one place that writes it out.
 */
export interface CommandResult {
  exitCode: number;
  lines: string[];
}

/**
 * Runs a command and prints its lines; a thrown error goes to stderr with the exit code
 * `exitCodeFor(err)` gives.
 */
export async function printResult(
  command: () => Promise<CommandResult>,
  exitCodeFor: (err: unknown) => number,
): Promise<void> {
  try {
    const r = await command();
    for (const l of r.lines) process.stdout.write(`${l}\n`);
    process.exitCode = r.exitCode;
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = exitCodeFor(err);
  }
}
