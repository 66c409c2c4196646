// bare-signals (Bare's signal handles), as the Bare entry uses it: types only.
declare module 'bare-signals' {
  export default class Signal {
    constructor(signal: string);
    on(event: 'signal', listener: (signum: number) => void): this;
    start(): this;
    stop(): this;
    unref(): this;
    ref(): this;
    close(): Promise<void>;
  }
}

