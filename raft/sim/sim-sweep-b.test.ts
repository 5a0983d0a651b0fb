// CI sweep, second half: seeds 501..1000 (see sim-seeds.ts).
import t from 'tap';
import { sweepTest } from './sim-seeds.js';

sweepTest(t, 501, 500);
