/** Seeded randomness for the simulator: a seed replays the same fleet, reading for reading. */

/** A deterministic random source in [0, 1) (an LCG: small, fast, and good enough for sensor noise). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * A seed of its own for one part of the fleet (`uno-1/temp`), so each model draws from its own stream and the order
 * in which timers happen to fire cannot change what another model produces.
 */
export function deriveSeed(seed: number, name: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0; // FNV-1a over the name, started from the seed
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h || 1;
}

/** A standard normal draw from two uniforms (Box–Muller). */
export function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}
