/** Activations shared by both converters (Keras `activation` configs, TF unary/fused ops). */
import type { Attribute } from '../proto.js';
import type { OnnxBuilder, Val } from './builder.js';

export type Activation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'tanh' | 'elu' | 'selu' | 'softplus' | 'swish' | 'hard_sigmoid' | 'softmax' | { leaky: number };

type Emit = (b: OnnxBuilder, inp: string, base: string) => string;
const simple = (op: string): Emit => (b, inp, base) => b.node(op, [inp], base);

const EMITTERS: Record<Exclude<Activation, 'linear' | { leaky: number }>, Emit> = {
  relu: simple('Relu'),
  // Opset >= 11: Clip takes min/max as inputs.
  relu6: (b, inp, base) => b.node('Clip', [inp, b.scalar(0), b.scalar(6)], base),
  sigmoid: simple('Sigmoid'),
  tanh: simple('Tanh'),
  elu: simple('Elu'),
  selu: simple('Selu'),
  softplus: simple('Softplus'),
  hard_sigmoid: (b, inp, base) => b.node('HardSigmoid', [inp], base, [{ name: 'alpha', type: 'float', f: 0.2 }, { name: 'beta', type: 'float', f: 0.5 }]),
  swish: (b, inp, base) => b.node('Mul', [inp, b.node('Sigmoid', [inp], `${base}/sigmoid`)], base),
  // Channels are axis 1 in NCHW / NC.
  softmax: (b, inp, base) => b.node('Softmax', [inp], base, [{ name: 'axis', type: 'int', i: 1 }]),
};

export function applyActivation(b: OnnxBuilder, x: Val, act: Activation, base: string): Val {
  if (act === 'linear') return x;
  const inp = b.tensor(x);
  const out = (name: string) => ({ name, rank: x.rank, channels: x.channels });
  if (typeof act === 'object') {
    const alpha: Attribute = { name: 'alpha', type: 'float', f: act.leaky };
    return out(b.node('LeakyRelu', [inp], base, [alpha]));
  }
  return out(EMITTERS[act](b, inp, base));
}

export const KERAS_ACTIVATIONS: Record<string, Activation> = {
  linear: 'linear', relu: 'relu', relu6: 'relu6', sigmoid: 'sigmoid', tanh: 'tanh', elu: 'elu', selu: 'selu',
  softplus: 'softplus', swish: 'swish', silu: 'swish', hard_sigmoid: 'hard_sigmoid', softmax: 'softmax',
};
