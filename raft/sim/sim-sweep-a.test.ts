// CI sweep, first half: seeds 1..1000 (see sim-seeds.ts).
import t from 'tap';
import { sweepTest } from './sim-seeds.js';

sweepTest(t, 1, 1000);
