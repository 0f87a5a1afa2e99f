/** What the benchmarks ran on, recorded with every result so figures can be read in context. */
import { cpus, totalmem, loadavg, platform, release } from 'node:os';

export interface MachineInfo {
  cores: number;
  model: string;
  memoryGiB: number;
  node: string;
  platform: string;
  /** 1-minute load average when the run started: the machine is shared, so this tells how busy it was. */
  loadAvg1: number;
  at: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cores: list.length,
    model: list[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${platform()} ${release()}`,
    loadAvg1: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    at: new Date().toISOString(),
  };
}
