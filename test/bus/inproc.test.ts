import { InProcessBus } from '../../src/bus/inproc.js';
import { runBusConformance } from '../conformance/bus.js';

runBusConformance('in-process', async () => new InProcessBus());
