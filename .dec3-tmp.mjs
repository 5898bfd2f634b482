import sharp from 'sharp';
import { readFileSync, readdirSync } from 'node:fs';
sharp.cache(false);
const root='/work/shared/images/labelled';
const paths=[]; for (const c of readdirSync(root).filter(c=>!c.includes('.'))) for (const f of readdirSync(root+'/'+c)) paths.push(root+'/'+c+'/'+f);
const bufs = paths.map(p=>readFileSync(p));
const metas = await Promise.all(bufs.map(b=>sharp(b).metadata()));
async function run(inflight, fn){
  const c0=process.cpuUsage(), t0=performance.now(); let next=0;
  await Promise.all(Array.from({length:inflight},async()=>{while(next<bufs.length){const i=next++; await fn(i);}}));
  const c=process.cpuUsage(c0); return [(c.user+c.system)/1000/bufs.length, (performance.now()-t0)/bufs.length];
}
const tgtOf = m=>{const s=224; return m.width<=m.height?{width:s,height:Math.round(m.height*s/m.width)}:{height:s,width:Math.round(m.width*s/m.height)}};
const o = {failOn:'error', limitInputPixels: 268402689, autoOrient:true, sequentialRead:true, pages:1, page:0};
const pipe = (i, opts, t) => sharp(bufs[i],opts).flatten({background:'#ffffff'}).resize({...t,fit:'fill',kernel:'lanczos3'}).toColourspace('srgb').raw({depth:'uchar'}).toBuffer({resolveWithObject:true});
const cfg = {
  'meta+seq': async i=>{const m=await sharp(bufs[i],{failOn:'error',limitInputPixels:false}).metadata(); return pipe(i,o,tgtOf(m));},
  'seq only': async i=>pipe(i,o,tgtOf(metas[i])),
  'meta+rand': async i=>{const m=await sharp(bufs[i],{failOn:'error',limitInputPixels:false}).metadata(); return pipe(i,{...o,sequentialRead:false},tgtOf(m));},
  'rand only': async i=>pipe(i,{...o,sequentialRead:false},tgtOf(metas[i])),
};
const res = Object.fromEntries(Object.keys(cfg).map(k=>[k,[]]));
for (let r=0;r<7;r++) for (const [k,f] of Object.entries(cfg)) res[k].push(await run(4,f));
const med = a => a.slice().sort((x,y)=>x-y)[a.length>>1];
for (const [k,v] of Object.entries(res)) console.log(k.padEnd(12), 'cpu', med(v.map(x=>x[0])).toFixed(3), 'wall', med(v.map(x=>x[1])).toFixed(3));
const a = await pipe(0,o,tgtOf(metas[0])), b = await pipe(0,{...o,sequentialRead:false},tgtOf(metas[0]));
console.log('identical', Buffer.compare(a.data,b.data)===0);
