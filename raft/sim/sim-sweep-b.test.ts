// CI sweep, second half: seeds 1001..2000 (see sim-seeds.ts).
import t from 'tap';
import { sweepTest } from './sim-seeds.js';

sweepTest(t, 1001, 1000);
