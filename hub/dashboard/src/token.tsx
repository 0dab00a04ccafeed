/**
 * The API token's face: a modal prompt when an action was answered 401 (a native <dialog>: focus moves into it,
 * Tab stays inside, Escape cancels, focus goes back where it was), and in the header whether this tab holds a token,
 * with "Forget token". Status is always words and a sign, never colour alone.
 */
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { type AuthState, auth, type TokenPrompt } from "./auth.ts";

/**
 * The control the user last focused outside the prompt: the one to give focus back to. (The button that started the
 * action is disabled while it runs, which drops its focus before the prompt opens, so `activeElement` at that time
 * is the body.)
 */
let lastFocused: HTMLElement | null = null;
document.addEventListener("focusin", (e) => {
  if (e.target instanceof HTMLElement && e.target.closest("dialog") === null) lastFocused = e.target;
});

/** Focuses `el` once it can take focus again (it is re-enabled when its action ends), unless the user moved on. */
function restoreFocus(el: HTMLElement): void {
  let tries = 0;
  const attempt = () => {
    if (!el.isConnected) return;
    const active = document.activeElement;
    // Nothing focused, or still the closing prompt's field: ours to move. Anything else: the user moved on.
    const free = active === null || active === document.body || active.closest("dialog") !== null;
    if (!free && active !== el) return;
    el.focus();
    if (document.activeElement !== el && ++tries < 100) setTimeout(attempt, 100);
  };
  attempt();
}

function useAuth(): AuthState {
  const [state, setState] = useState(auth.get());
  useEffect(() => {
    setState(auth.get());
    return auth.subscribe(() => setState(auth.get()));
  }, []);
  return state;
}

const SOURCE: Record<string, string> = {
  link: "the token in the link you opened",
  prompt: "that token",
  session: "the token this tab had kept",
};

function refusalText(prompt: TokenPrompt): string {
  return `The hub refused ${SOURCE[prompt.source ?? "prompt"]} (401). Check it and enter it again.`;
}

function actionsText(actions: string[]): string {
  const [first, ...more] = actions;
  return more.length === 0 ? `${first}` : `${first} (and ${more.length} more)`;
}

/** The header's token status and "Forget token". */
export function TokenStatus() {
  const state = useAuth();
  return (
    <span class="token-state" data-role="token-state">
      <span role="status">
        {state.hasToken ? (
          <span class="badge token-set" title="kept in this tab's session storage; gone when the tab closes">
            ✓ API token set (this tab)
          </span>
        ) : (
          state.notice && <span class="muted">{state.notice}</span>
        )}
      </span>
      {state.hasToken && (
        <button type="button" data-role="forget-token" onClick={() => auth.forget()}>
          Forget token
        </button>
      )}
    </span>
  );
}

/** The prompt, open while actions wait for a token. */
export function TokenDialog() {
  const { prompt } = useAuth();
  const dialog = useRef<HTMLDialogElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const returnTo = useRef<HTMLElement | null>(null);
  // The field is uncontrolled: submit reads what is in it now, not a state that may not have rendered yet (a fast
  // typist's Enter would otherwise send the token without its last characters).
  const clearField = () => {
    if (input.current) input.current.value = "";
  };
  const [empty, setEmpty] = useState(false);
  const open = prompt !== null;

  // A layout effect: the dialog opens and closes in the same commit as the state says, never a frame later (the
  // prompt can close and open again within one frame when a token is refused at once).
  useLayoutEffect(() => {
    const el = dialog.current;
    if (el === null) return;
    if (open && !el.open) {
      returnTo.current = lastFocused;
      el.showModal();
      input.current?.focus();
    } else if (!open && el.open) {
      el.close();
    }
  }, [open]);

  // Each refusal clears the field and focuses it again for the next try.
  const refused = prompt?.reason === "refused";
  const refusals = prompt?.refusals ?? 0;
  useLayoutEffect(() => {
    if (refusals > 0) {
      clearField();
      input.current?.focus();
    }
  }, [refusals]);

  // Escape: the user's cancel. Only this and the Cancel button cancel; `close` events only tidy up, since one is
  // dispatched after close() returns and may arrive when the prompt is already open again for a refused token.
  const onCancel = (e: Event) => {
    e.preventDefault();
    auth.cancel();
  };
  const onClose = () => {
    if (dialog.current?.open) return;
    clearField();
    setEmpty(false);
    const back = returnTo.current;
    returnTo.current = null;
    if (back !== null) restoreFocus(back);
  };

  const submit = (e: Event) => {
    e.preventDefault();
    const token = input.current?.value.trim() ?? "";
    if (token === "") {
      setEmpty(true);
      input.current?.focus();
      return;
    }
    setEmpty(false);
    clearField();
    auth.submit(token);
  };

  const errorId = "token-error";
  const error = empty ? "Enter the token first." : refused && prompt ? refusalText(prompt) : null;
  return (
    <dialog
      ref={dialog}
      class="token-dialog"
      aria-labelledby="token-h"
      aria-describedby="token-why"
      data-role="token-dialog"
      onCancel={onCancel}
      onClose={onClose}
    >
      <form method="dialog" noValidate onSubmit={submit} aria-labelledby="token-h">
        <h2 id="token-h">API token needed</h2>
        <p id="token-why">
          This hub accepts changes only with its API token
          {prompt && prompt.actions.length > 0 && (
            <>
              {" "}
              (to <span data-role="token-action">{actionsText(prompt.actions)}</span>)
            </>
          )}
          . It is the one <code>ganglion start</code> printed (<code>ganglion: api token …</code>) or was
          given with <code>--api-token</code> / <code>GANGLION_API_TOKEN</code>. Reading the fleet needs no
          token.
        </p>
        {error && (
          <p class="error" role="alert" id={errorId} data-role="token-error">
            ✕ {error}
          </p>
        )}
        <label for="token-input">API token</label>
        <input
          ref={input}
          id="token-input"
          type="password"
          name="token"
          autocomplete="off"
          spellcheck={false}
          required
          aria-invalid={error !== null}
          aria-describedby={error ? errorId : undefined}
        />
        <p class="muted hint">Kept for this tab only (until it closes, or Forget token).</p>
        <div class="dialog-buttons">
          <button type="submit" class="primary">
            Use token
          </button>
          <button type="button" onClick={() => auth.cancel()}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
