/** A uPlot sparkline of one sensor: history first (read on mount and after each snapshot), then live readings. */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import type { Series } from "./state.ts";

interface Props {
  series: Series | undefined;
  /** Asks for the sensor's history; called on mount and whenever `epoch` changes. */
  load(): Promise<void>;
  epoch: number;
  label: string;
}

const WIDTH = 140;
const HEIGHT = 36;

export function Sparkline({ series, load, epoch, label }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  // History is read again per snapshot (epoch), not per render.
  useEffect(() => {
    load().catch(() => undefined);
  }, [epoch]);

  useEffect(() => {
    if (box.current === null) return;
    const u = new uPlot(
      {
        width: WIDTH,
        height: HEIGHT,
        pxAlign: false,
        cursor: { show: false },
        legend: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        scales: { x: { time: false } },
        axes: [{ show: false }, { show: false }],
        series: [
          {},
          { stroke: "#2f6fd0", width: 1.5, fill: "rgba(47,111,208,0.12)", points: { show: false } },
        ],
      },
      [[], []],
      box.current,
    );
    plot.current = u;
    return () => {
      u.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData([series?.ts ?? [], series?.values ?? []]);
  }, [series]);

  const points = series?.ts.length ?? 0;
  return (
    <div
      class="sparkline"
      ref={box}
      role="img"
      aria-label={`${label}: ${points} recent readings`}
      data-points={points}
      data-first-ts={series?.ts[0]}
    />
  );
}
