/**
 * `memo` for Preact without preact/compat: a component that renders again only when its props changed (shallowly,
 * or by `equal`). The 1,000-device page leans on it: a frame of readings changes a few devices, and only their
 * rows and cards may render.
 */
import { Component, type ComponentType, type FunctionComponent, h } from "preact";

export function shallowEqual<P extends object>(a: P, b: P): boolean {
  for (const k in a) if (a[k] !== b[k]) return false;
  for (const k in b) if (!(k in a)) return false;
  return true;
}

export function memo<P extends object>(
  render: FunctionComponent<P>,
  equal: (prev: P, next: P) => boolean = shallowEqual,
): ComponentType<P> {
  class Memo extends Component<P> {
    override shouldComponentUpdate(next: P): boolean {
      return !equal(this.props as P, next);
    }
    override render(props: P) {
      return h(render, props);
    }
  }
  (Memo as { displayName?: string }).displayName = `Memo(${render.displayName ?? render.name})`;
  return Memo as unknown as ComponentType<P>;
}
