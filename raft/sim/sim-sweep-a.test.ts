// CI sweep, first half: seeds 1..500 (see sim-seeds.ts).
import t from 'tap';
import { sweepTest } from './sim-seeds.js';

sweepTest(t, 1, 500);
