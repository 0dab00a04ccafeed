/**
 * A windowed list: of a long list only the rows in (or near) the scrolled view are in the DOM, absolutely
 * positioned over a spacer as tall as the whole list. Row heights are measured once rendered (ResizeObserver) and
 * estimated until then, so rows may wrap or differ (a device card with seven sensors, another with one).
 *
 * With `windowed` false it renders every row in normal flow, as a plain list would: small fleets keep the page's
 * own scrolling and every card stays in the DOM.
 */
import { type ComponentChild, Fragment, type HTMLAttributes } from "preact";
import { useEffect, useLayoutEffect, useReducer, useRef, useState } from "preact/hooks";

interface Props<T> {
  items: readonly T[];
  windowed: boolean;
  keyOf(item: T): string;
  /** A row's height in px before it was measured. */
  estimate(item: T): number;
  renderRow(item: T, index: number): ComponentChild;
  /** A row rendered even when out of view (the focused tree row keeps the keyboard focus while the list scrolls). */
  pin?: number | undefined;
  /** When `seq` changes, scroll so that row `index` is in view (keyboard moves). */
  reveal?: { index: number; seq: number } | undefined;
  /** Rendered beyond each edge of the view, in px. */
  overscanPx?: number;
  /** Attributes of the container (role, labels, handlers, class). */
  container?: HTMLAttributes<HTMLDivElement>;
  containerRef?: { current: HTMLDivElement | null };
}

/** See the module comment. The container carries `data-rendered` (rows in the DOM) and `data-total`. */
export function Windowed<T>(props: Props<T>) {
  const { items, windowed, keyOf, estimate, renderRow, pin, reveal, overscanPx = 400 } = props;
  const own = useRef<HTMLDivElement>(null);
  const box = props.containerRef ?? own;
  const heights = useRef(new Map<string, number>());
  const [view, setView] = useState({ top: 0, height: 800 });
  const [, remeasured] = useReducer((n: number) => n + 1, 0);
  const frame = useRef<number | undefined>(undefined);
  const observer = useRef<ResizeObserver | null>(null);
  const observed = useRef(new Map<Element, string>());

  // The view: scroll position (once per frame) and the container's height.
  useEffect(() => {
    const el = box.current;
    if (!windowed || el === null) return;
    const read = () => {
      frame.current = undefined;
      setView((v) =>
        v.top === el.scrollTop && v.height === el.clientHeight
          ? v
          : { top: el.scrollTop, height: el.clientHeight },
      );
    };
    const onScroll = () => {
      frame.current ??= requestAnimationFrame(read);
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    const ro = new ResizeObserver(onScroll);
    ro.observe(el);
    read();
    return () => {
      el.removeEventListener("scroll", onScroll);
      ro.disconnect();
      if (frame.current !== undefined) cancelAnimationFrame(frame.current);
      frame.current = undefined;
    };
  }, [windowed]);

  // Rendered rows report their height; a change moves the rows below, so render again.
  useEffect(() => {
    if (!windowed) return;
    const ro = new ResizeObserver((entries) => {
      let changed = false;
      for (const entry of entries) {
        const key = observed.current.get(entry.target);
        if (key === undefined) continue;
        const h = entry.borderBoxSize?.[0]?.blockSize ?? (entry.target as HTMLElement).offsetHeight;
        if (h > 0 && heights.current.get(key) !== h) {
          heights.current.set(key, h);
          changed = true;
        }
      }
      if (changed) remeasured(0);
    });
    observer.current = ro;
    return () => {
      ro.disconnect();
      observer.current = null;
      observed.current.clear();
    };
  }, [windowed]);

  useLayoutEffect(() => {
    const ro = observer.current;
    const el = box.current;
    if (!windowed || ro === null || el === null) return;
    for (const [row, key] of observed.current) {
      if (!row.isConnected) {
        ro.unobserve(row);
        observed.current.delete(row);
      } else if (row.getAttribute("data-wkey") !== key)
        observed.current.set(row, row.getAttribute("data-wkey")!);
    }
    for (const row of el.querySelectorAll("[data-wkey]")) {
      if (!observed.current.has(row)) {
        observed.current.set(row, row.getAttribute("data-wkey")!);
        ro.observe(row);
      }
    }
  });

  // Offsets of every row (a few thousand additions: cheap next to rendering even one row).
  const offsets = new Float64Array(items.length + 1);
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    offsets[i + 1] = offsets[i]! + (heights.current.get(keyOf(item)) ?? estimate(item));
  }
  const total = offsets[items.length]!;

  useLayoutEffect(() => {
    const el = box.current;
    if (!windowed || el === null || reveal === undefined) return;
    const i = reveal.index;
    if (i < 0 || i >= items.length) return;
    const top = offsets[i]!;
    const bottom = offsets[i + 1]!;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (bottom > el.scrollTop + el.clientHeight) el.scrollTop = bottom - el.clientHeight;
  }, [reveal?.seq]);

  if (!windowed) {
    return (
      <div ref={box} {...props.container}>
        {items.map((item, i) => (
          <Fragment key={keyOf(item)}>{renderRow(item, i)}</Fragment>
        ))}
      </div>
    );
  }

  const from = view.top - overscanPx;
  const to = view.top + view.height + overscanPx;
  let first = 0;
  while (first < items.length && offsets[first + 1]! < from) first++;
  let last = first;
  while (last < items.length && offsets[last]! <= to) last++;
  const shown: number[] = [];
  if (pin !== undefined && pin >= 0 && pin < first) shown.push(pin);
  for (let i = first; i < last; i++) shown.push(i);
  if (pin !== undefined && pin >= last && pin < items.length) shown.push(pin);

  const { class: cls, ...rest } = props.container ?? {};
  return (
    <div
      ref={box}
      {...rest}
      class={`${cls ?? ""} windowed`}
      data-rendered={shown.length}
      data-total={items.length}
    >
      <div role="none" class="window-spacer" style={{ height: `${total}px` }}>
        {shown.map((i) => {
          const item = items[i]!;
          const key = keyOf(item);
          return (
            <div
              key={key}
              role="none"
              class="window-row"
              data-wkey={key}
              style={{ transform: `translateY(${offsets[i]}px)` }}
            >
              {renderRow(item, i)}
            </div>
          );
        })}
      </div>
    </div>
  );
}
